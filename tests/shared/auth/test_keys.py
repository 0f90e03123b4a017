"""JWT keys from the environment, Secrets Manager and SSM (moto), and their refusals."""

from __future__ import annotations

import base64
import importlib.abc
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from moto import mock_aws

import lucid.auth
from lucid import secret_store
from lucid.auth.keys import KeyConfigurationError, KeyRing, get_key_ring
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.errors import InvalidTokenError
from lucid.identity import Role
from lucid.secret_store import SecretUnavailableError

LONG_KEY = "k" * 40


def _settings(**values: Any) -> Settings:
    defaults: dict[str, Any] = {"JWT_SECRET_KEY": None, "STAGE": "prod", "JWT_SECRET_ARN": "x"}
    defaults.update(values)
    return Settings(**defaults)


def _pem_private(key: PrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_public(key: PrivateKeyTypes) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def aws() -> Iterator[None]:
    secret_store._client.cache_clear()  # its credentials are bound when it is built
    with mock_aws():
        yield
    secret_store._client.cache_clear()


def _secret(value: str | bytes) -> str:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    name = f"jwt-{uuid.uuid4().hex}"
    if isinstance(value, bytes):
        return client.create_secret(Name=name, SecretBinary=value)["ARN"]
    return client.create_secret(Name=name, SecretString=value)["ARN"]


def _round_trip(settings: Settings, ring: KeyRing | None = None) -> str:
    service = TokenService(settings, ring or KeyRing(settings))
    issued = service.issue("u1", "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC", Role.USER, "s1")
    return service.decode(issued.token).sub


@pytest.mark.usefixtures("aws")
def test_key_from_secrets_manager_signs_and_is_cached(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a signing key held in Secrets Manager, never rotated (no AWSPREVIOUS version)
    arn = _secret(LONG_KEY)
    settings = _settings(JWT_SECRET_ARN=arn)
    now = [time.time()]
    ring = KeyRing(settings, max_age=300, clock=lambda: now[0])
    # THEN tokens sign and verify with it, and nothing is said of a previous version
    with caplog.at_level(logging.WARNING):
        assert _round_trip(settings, ring) == "u1"
    assert ring.keys().current.signing == LONG_KEY.encode()
    assert caplog.records == []
    # WHEN the secret rotates THEN the cached value serves until max_age passes
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=arn, SecretString="n" * 40
    )
    assert ring.keys().current.signing == LONG_KEY.encode()
    now[0] += 299
    assert ring.keys().current.signing == LONG_KEY.encode()
    # ...and once the cache lapses the same ring switches to the new key
    now[0] += 1
    assert ring.keys().current.signing == b"n" * 40


@pytest.mark.usefixtures("aws")
def test_binary_secret_is_a_key() -> None:
    settings = _settings(JWT_SECRET_ARN=_secret(b"\x01" * 32))
    assert KeyRing(settings).keys().current.signing == b"\x01" * 32


@pytest.mark.usefixtures("aws")
def test_key_from_ssm_secure_string() -> None:
    name = f"/lucid/{uuid.uuid4().hex}/jwt"
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=name, Value=LONG_KEY, Type="SecureString"
    )
    settings = _settings(JWT_SECRET_ARN=None, JWT_SECRET_PARAM=name)
    assert _round_trip(settings) == "u1"


@pytest.mark.usefixtures("aws")
def test_an_hs256_function_given_a_public_key_reference_signs_with_its_own_key_only() -> None:
    # GIVEN an HS256 function whose environment also names a public key's parameter (the
    # template refuses that pair; sam local or a hand-set variable need not)
    name = f"/lucid/{uuid.uuid4().hex}/public"
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=name, Value="p" * 40, Type="String"
    )
    settings = _settings(JWT_SECRET_ARN=None, JWT_SECRET_KEY=LONG_KEY, JWT_PUBLIC_KEY_PARAM=name)
    # WHEN it issues a token THEN it is signed with JWT_SECRET_KEY: the public value, which
    # anyone may read, never becomes an HMAC key that would sign or verify
    token = TokenService(settings, KeyRing(settings)).issue("u1", "T", Role.USER, "s1").token
    assert jwt.decode(token, LONG_KEY, algorithms=["HS256"], audience="lucid/prod")["sub"] == "u1"
    forged = jwt.encode({"sub": "u1"}, "p" * 40, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(InvalidTokenError, match="signature is invalid"):
        TokenService(settings, KeyRing(settings)).decode(forged)


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("source", ["JWT_SECRET_ARN", "JWT_SECRET_PARAM"])
def test_short_key_from_aws_is_refused_outside_local(source: str) -> None:
    # GIVEN a 16-byte key in AWS on the prod stage
    if source == "JWT_SECRET_ARN":
        where = _secret("s" * 16)
    else:
        where = f"/lucid/{uuid.uuid4().hex}"
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name=where, Value="s" * 16, Type="SecureString"
        )
    values = {"JWT_SECRET_ARN": None, source: where}
    with pytest.raises(KeyConfigurationError, match="at least 32 bytes"):
        KeyRing(_settings(**values)).keys()
    # but the local stage accepts it (developer machines)
    assert KeyRing(_settings(STAGE="local", **values)).keys().current.signing == b"s" * 16


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize(("algorithm", "least"), [("HS384", 48), ("HS512", 64)])
def test_an_aws_key_shorter_than_the_hmac_hash_is_refused(algorithm: str, least: int) -> None:
    # GIVEN a 40-byte key in AWS (enough for HS256) on the prod stage, for a longer HMAC:
    # RFC 7518 section 3.2 asks for a key at least the hash's size, and PyJWT would warn
    # (InsecureKeyLengthWarning) at every token it signs with it
    values = {"JWT_ALGORITHM": algorithm, "JWT_SECRET_ARN": _secret(LONG_KEY)}
    with pytest.raises(KeyConfigurationError, match=f"at least {least} bytes"):
        KeyRing(_settings(**values)).keys()
    # AND a key of the hash's size signs and verifies, without a warning (-W error)
    values["JWT_SECRET_ARN"] = _secret("k" * least)
    assert _round_trip(_settings(**values)) == "u1"


@pytest.mark.usefixtures("aws")
def test_missing_secret_is_a_503_naming_nothing_of_the_account() -> None:
    # GIVEN a key secret that does not exist
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"
    # WHEN the key ring is asked for the keys THEN it is a 503 for this call (not a start-up
    # failure), whose client-facing detail holds no ARN; the log names it (test_secret_store)
    with pytest.raises(SecretUnavailableError) as caught:
        KeyRing(_settings(JWT_SECRET_ARN=arn)).keys()
    assert caught.value.status == 503
    assert "123456789012" not in caught.value.detail
    assert "does not exist" in caught.value.reason


@pytest.mark.parametrize("stage", ["local", "prod"])
def test_no_key_at_all_is_refused(stage: str) -> None:
    settings = _settings(STAGE=stage, JWT_SECRET_ARN=None)
    with pytest.raises(KeyConfigurationError, match=r"no JWT signing key.*JWT_SECRET_ARN"):
        KeyRing(settings).keys()


def test_process_key_ring_uses_the_environment_key() -> None:
    assert get_key_ring() is get_key_ring()
    assert get_key_ring().keys().current.kid == "k1"


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_asymmetric_keys_sign_and_a_public_key_alone_verifies(
    algorithm: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> None:
    signer = _settings(
        JWT_SECRET_ARN=None,
        JWT_ALGORITHM=algorithm,
        JWT_PRIVATE_KEY=_pem_private(key),
        JWT_PUBLIC_KEY=_pem_public(key),
    )
    verifier = _settings(
        JWT_SECRET_ARN=None, JWT_ALGORITHM=algorithm, JWT_PUBLIC_KEY=_pem_public(key)
    )
    issued = TokenService(signer, KeyRing(signer)).issue("u9", "T", Role.ADMIN, "s1")
    assert jwt_header_alg(issued.token) == algorithm
    assert TokenService(verifier, KeyRing(verifier)).decode(issued.token).sub == "u9"
    assert KeyRing(verifier).keys().current.signing is None


def jwt_header_alg(token: str) -> str:
    import jwt

    return str(jwt.get_unverified_header(token)["alg"])


_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC = ec.generate_private_key(ec.SECP256R1())


_RSA_TOO_SHORT = "RS256 needs an RSA key of at least 2048 bits"
_NOT_P256 = "ES256 needs an EC key on curve P-256"
_NOT_BOTH = "a previous JWT key needs both its key and JWT_PREVIOUS_KEY_ID"


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"JWT_ALGORITHM": "RS256"}, "RS256 needs JWT_PRIVATE_KEY or JWT_PUBLIC_KEY"),
        (
            {"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": "nope"},
            "the JWT private key is not an unencrypted PEM key",
        ),
        (  # a PEM key, encrypted: the function has no passphrase to open it with
            {
                "JWT_ALGORITHM": "RS256",
                "JWT_PRIVATE_KEY": _RSA.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(b"passphrase"),
                ).decode(),
            },
            "the JWT private key is not an unencrypted PEM key",
        ),
        (
            {"JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": "nope"},
            "a JWT public key is not a PEM public key",
        ),
        ({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": _pem_private(_EC)}, _RSA_TOO_SHORT),
        (  # a DSA key as long as the least RSA key is not an RSA key
            {
                "JWT_ALGORITHM": "RS256",
                "JWT_PUBLIC_KEY": _pem_public(dsa.generate_private_key(2048)),
            },
            _RSA_TOO_SHORT,
        ),
        (  # one bit short of the least
            {
                "JWT_ALGORITHM": "RS256",
                "JWT_PRIVATE_KEY": _pem_private(
                    rsa.generate_private_key(public_exponent=65537, key_size=2047)
                ),
            },
            _RSA_TOO_SHORT,
        ),
        ({"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEY": _pem_public(_RSA)}, _NOT_P256),
        (
            {
                "JWT_ALGORITHM": "ES256",
                "JWT_PUBLIC_KEY": _pem_public(ec.generate_private_key(ec.SECP384R1())),
            },
            _NOT_P256,
        ),
        (
            {
                "JWT_ALGORITHM": "RS256",
                "JWT_PRIVATE_KEY": _pem_private(_RSA),
                "JWT_PUBLIC_KEY": _pem_public(
                    rsa.generate_private_key(public_exponent=65537, key_size=2048)
                ),
            },
            "JWT_PUBLIC_KEY does not belong to the JWT private key",
        ),
        (
            {"JWT_SECRET_KEY": LONG_KEY, "JWT_PREVIOUS_KEY_ID": "k1"},
            "JWT_PREVIOUS_KEY_ID must differ from JWT_KEY_ID",
        ),
        ({"JWT_SECRET_KEY": LONG_KEY, "JWT_PREVIOUS_KEY_ID": "k0"}, _NOT_BOTH),
        ({"JWT_SECRET_KEY": LONG_KEY, "JWT_PREVIOUS_SECRET_KEY": LONG_KEY}, _NOT_BOTH),
    ],
)
def test_unusable_key_configuration_is_refused(values: dict[str, Any], reason: str) -> None:
    # GIVEN keys a function cannot sign or verify with WHEN it reads them THEN it refuses them
    # with the words the operator reads in its log (and nothing before or after them)
    with pytest.raises(KeyConfigurationError) as refused:
        KeyRing(_settings(JWT_SECRET_ARN=None, **values)).keys()
    assert str(refused.value) == reason


def test_previous_public_key_verifies_during_rotation() -> None:
    # GIVEN tokens signed by the old RSA key k0, and a new key k1 with k0 as previous
    old = _settings(
        JWT_SECRET_ARN=None,
        JWT_ALGORITHM="RS256",
        JWT_KEY_ID="k0",
        JWT_PRIVATE_KEY=_pem_private(_RSA),
    )
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = _settings(
        JWT_SECRET_ARN=None,
        JWT_ALGORITHM="RS256",
        JWT_PRIVATE_KEY=_pem_private(new_key),
        JWT_PREVIOUS_KEY_ID="k0",
        JWT_PREVIOUS_PUBLIC_KEY=_pem_public(_RSA),
    )
    old_token = TokenService(old, KeyRing(old)).issue("u1", "T", Role.USER, "s1").token
    # THEN the new deployment still accepts it
    assert TokenService(new, KeyRing(new)).decode(old_token).sub == "u1"


def _without_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the default layer: `cryptography` cannot be imported (nor what imported it)."""
    for name in [m for m in sys.modules if m.startswith("cryptography.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    monkeypatch.delitem(sys.modules, "lucid.auth.pem", raising=False)
    monkeypatch.delattr(lucid.auth, "pem", raising=False)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_without_cryptography_pem_keys_are_refused_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    # GIVEN the default layer, which does not ship cryptography
    _without_cryptography(monkeypatch)
    key = ec.generate_private_key(ec.SECP256R1())
    settings = _settings(
        JWT_ALGORITHM=algorithm, JWT_SECRET_ARN=None, JWT_PUBLIC_KEY=_pem_public(key)
    )
    # WHEN the function builds its keys at cold start THEN it refuses, saying what to add
    with pytest.raises(KeyConfigurationError, match="need the `cryptography` package"):
        KeyRing(settings).keys()


def test_another_missing_module_is_not_reported_as_a_missing_cryptography(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a broken build: cryptography is there, a module lucid.auth.pem imports is not
    key = ec.generate_private_key(ec.SECP256R1())
    settings = _settings(
        JWT_ALGORITHM="ES256", JWT_SECRET_ARN=None, JWT_PUBLIC_KEY=_pem_public(key)
    )
    monkeypatch.delitem(sys.modules, "lucid.auth.pem", raising=False)
    monkeypatch.delattr(lucid.auth, "pem", raising=False)
    with monkeypatch.context() as broken:
        broken.setitem(sys.modules, "lucid.config", None)
        # WHEN the function builds its keys THEN the error names the module really missing,
        # not cryptography (whose advice, "add it to the layer", would not help)
        with pytest.raises(ModuleNotFoundError) as raised:
            KeyRing(settings).keys()
    assert raised.value.name == "lucid.config"

    # AND one that names no module (a package's own `raise ModuleNotFoundError("...")`: its
    # `name` is None) reaches the operator as it was raised, its own advice intact
    class Refusing(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, *_: object) -> None:
            if name == "lucid.auth.pem":
                raise ModuleNotFoundError("the build left out a module: rebuild the layer")

    monkeypatch.setattr(sys, "meta_path", [Refusing(), *sys.meta_path])
    with pytest.raises(ModuleNotFoundError) as raised:
        KeyRing(settings).keys()
    assert (str(raised.value), raised.value.name) == (
        "the build left out a module: rebuild the layer",
        None,
    )


def test_without_cryptography_hs256_signs_and_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_cryptography(monkeypatch)
    assert _round_trip(_settings(JWT_SECRET_ARN=None, JWT_SECRET_KEY=LONG_KEY)) == "u1"


# The order of P-256 (SEC 2 section 2.4.2, "secp256r1": n).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _es256_service() -> TokenService:
    pem = _pem_private(ec.generate_private_key(ec.SECP256R1()))
    settings = _settings(JWT_SECRET_ARN=None, JWT_ALGORITHM="ES256", JWT_PRIVATE_KEY=pem)
    return TokenService(settings, KeyRing(settings))


def _r_s(token: str) -> tuple[int, int]:
    raw = base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _with_signature(token: str, r: int, s: int) -> str:
    signature = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return token.rsplit(".", 1)[0] + "." + signature.rstrip(b"=").decode()


def test_es256_tokens_have_one_spelling_the_low_s_one() -> None:
    # GIVEN an ES256 deployment (ECDSA: (r, s) and (r, n - s) both verify, so each token has
    # a malleated twin, another Authorization value for one signature)
    service = _es256_service()
    tokens = [service.issue("u1", "T", Role.USER, f"s{i}").token for i in range(24)]
    # WHEN tokens are issued THEN every one carries the low-s signature (half would not: ECDSA
    # draws s at random), and decodes
    assert all(_r_s(token)[1] <= P256_ORDER // 2 for token in tokens)
    assert all(service.decode(token).sub == "u1" for token in tokens)
    # AND the high-s twin of a token is refused before any key is tried
    r, s = _r_s(tokens[0])
    twin = _with_signature(tokens[0], r, P256_ORDER - s)
    with pytest.raises(InvalidTokenError, match=r"not canonical \(high-s\)"):
        service.decode(twin)
    # AND s = (n - 1) / 2, the highest low s, is not high-s: left to the signature check
    with pytest.raises(InvalidTokenError, match="token signature is invalid"):
        service.decode(_with_signature(tokens[0], r, P256_ORDER // 2))
    # AND a signature that is not 64 bytes is left to the signature check, which refuses it
    short = base64.urlsafe_b64encode(bytes(63)).rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError, match="token signature is invalid"):
        service.decode(tokens[0].rsplit(".", 1)[0] + "." + short)
