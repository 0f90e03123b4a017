"""Access tokens: issue, decode, and every rejection RFC 8725 asks for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lucid.auth.keys import KeyRing
from lucid.auth.tokens import TokenService, get_token_service
from lucid.config import MAX_JWT_LEEWAY_SECONDS, Settings
from lucid.errors import InvalidTokenError
from lucid.identity import Role

KEY = "unit-test-key-0123456789abcdef0123456789"
OLD_KEY = "old-unit-test-key-0123456789abcdef012345"
ADDRESS = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"


def _service(clock: float | None = None, **values: Any) -> TokenService:
    settings = Settings(**{"JWT_SECRET_KEY": KEY, "STAGE": "local", **values})
    if clock is None:
        return TokenService(settings, KeyRing(settings))
    return TokenService(settings, KeyRing(settings), clock=lambda: clock)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "lucid-api-gateway/local",
        "aud": "lucid/local",
        "sub": "u1",
        "addr": ADDRESS,
        "role": "user",
        "tier": "authenticated",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "j1",
        "sid": "s1",
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: str = KEY, kid: str | None = "k1") -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm="HS256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rejected(service: TokenService, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        service.decode(token)
    assert not token or token not in caught.value.detail
    return caught.value.detail


def test_issued_token_decodes_to_its_claims() -> None:
    # GIVEN an admin signing in
    service = _service()
    issued = service.issue("u1", ADDRESS, Role.ADMIN, "s1")
    # THEN the token carries who, what tier, a kid and a 15-minute life
    claims = service.decode(issued.token)
    assert claims == issued.claims
    assert (claims.sub, claims.addr, claims.role, claims.tier) == ("u1", ADDRESS, "admin", "admin")
    assert (claims.typ, claims.iss, claims.aud) == (
        "access",
        "lucid-api-gateway/local",
        "lucid/local",
    )
    assert claims.sid == "s1"  # the sign-in that logout and refresh-token reuse revoke
    assert (issued.expires_in, claims.nbf) == (900, claims.iat)
    assert jwt.get_unverified_header(issued.token)["kid"] == "k1"
    assert service.issue("u2", ADDRESS, Role.USER, "s1").claims.tier == "authenticated"
    assert service.issue("u2", ADDRESS, Role.USER, "s1").claims.jti != claims.jti


def test_alg_none_is_refused() -> None:
    token = jwt.encode(_claims(), "", algorithm="none", headers={"kid": "k1"})
    assert _rejected(_service(), token) == "token algorithm is not accepted"


def test_rs256_public_key_used_as_hmac_secret_is_refused() -> None:
    # GIVEN an RS256 deployment whose public key an attacker knows
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    service = _service(JWT_ALGORITHM="RS256", JWT_PUBLIC_KEY=public_pem.decode())
    # WHEN they HMAC a token with that public key as the secret (PyJWT won't: do it by hand)
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        + "."
        + _b64(json.dumps(_claims()).encode())
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    # THEN it is refused
    assert _rejected(service, signing_input + "." + _b64(mac)) == "token algorithm is not accepted"


def test_rs256_token_is_refused_by_an_hs256_deployment() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": "k1"})
    assert _rejected(_service(), token) == "token algorithm is not accepted"


def test_expired_token_is_refused_after_the_leeway() -> None:
    service = _service()
    assert _rejected(service, _sign(_claims(exp=int(time.time()) - 11))) == "token has expired"
    # a token 5 s past exp is within the 10 s leeway (clock skew)
    assert service.decode(_sign(_claims(exp=int(time.time()) - 5))).sub == "u1"


@pytest.mark.parametrize("leeway", [0, 25, MAX_JWT_LEEWAY_SECONDS])
def test_the_token_check_allows_exactly_the_configured_leeway(leeway: int) -> None:
    # GIVEN a deployment configured with `leeway` seconds of clock skew (default 10)
    service = _service(JWT_LEEWAY_SECONDS=leeway)
    now = int(time.time())
    # WHEN a token expired a little less / a little more than that ago is checked
    within = _claims(exp=now - leeway + 2, iat=now - 600, nbf=now - 600)
    past = _claims(exp=now - leeway - 2, iat=now - 600, nbf=now - 600)
    # THEN the check applies the setting as configured, no other bound of its own
    assert service.decode(_sign(within)).sub == "u1"
    assert _rejected(service, _sign(past)) == "token has expired"


def test_token_issued_in_the_past_has_expired() -> None:
    service = _service()
    old = _service(clock=time.time() - 3600).issue("u1", ADDRESS, Role.USER, "s1")
    assert _rejected(service, old.token) == "token has expired"


def test_nbf_in_the_future_is_refused() -> None:
    future = int(time.time()) + 120
    assert _rejected(_service(), _sign(_claims(nbf=future))) == "token is not valid yet"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"iss": "someone-else"}, "token issuer is not accepted"),
        ({"aud": "other-api"}, "token audience is not accepted"),
        ({"aud": ["lucid", "other-api"]}, "token audience is not accepted"),
        ({"typ": "refresh"}, "token is not an access token"),
        ({"typ": None}, "token is not an access token"),
        ({"role": "root"}, "token claims are malformed"),
        ({"addr": None}, "token claims are malformed"),
        ({"sub": 7}, "token claims are invalid"),
        ({"tier": None}, "token claims are malformed"),
        ({"tier": 3}, "token claims are malformed"),
        ({"jti": ["j1"]}, "token claims are invalid"),  # PyJWT checks jti itself
        ({"sid": True}, "token claims are malformed"),
        # (a moment made when the test runs, not at collection: tests/test_no_time_bombs.py)
        ({"iat": lambda: int(time.time()) - 0.5}, "token claims are malformed"),
    ],
)
def test_claims_we_did_not_issue_are_refused(changes: dict[str, Any], detail: str) -> None:
    made = {name: value() if callable(value) else value for name, value in changes.items()}
    assert _rejected(_service(), _sign(_claims(**made))) == detail


def test_a_token_living_one_second_longer_than_the_configured_lifetime_is_refused() -> None:
    # GIVEN a 60-minute lifetime (revocations are kept for that long, lucid.auth.revocation)
    service = _service(TOKEN_EXPIRE_MINUTES=60)
    now = int(time.time())
    # WHEN a token lives exactly that long THEN it decodes; one second longer THEN it is refused
    assert service.decode(_sign(_claims(iat=now, nbf=now, exp=now + 3600))).sub == "u1"
    longer = _sign(_claims(iat=now - 1, nbf=now - 1, exp=now + 3600))
    assert _rejected(service, longer) == "token outlives the configured token lifetime"


def test_whole_number_times_written_as_floats_are_read_as_integers() -> None:
    now = int(time.time())
    claims = _service().decode(_sign(_claims(iat=float(now), nbf=float(now))))
    assert (claims.iat, claims.nbf) == (now, now)
    assert isinstance(claims.iat, int)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "sid"])
def test_every_required_claim_is_required(claim: str) -> None:
    detail = _rejected(_service(), _sign(_claims(**{claim: None})))
    assert detail == f"token lacks the {claim!r} claim"


def test_tampered_payload_is_refused() -> None:
    # GIVEN a valid user token WHEN its payload is edited to say admin
    token = _service().issue("u1", ADDRESS, Role.USER, "s1").token
    header, _, signature = token.split(".")
    forged = _b64(json.dumps(_claims(role="admin", tier="admin")).encode())
    assert _rejected(_service(), f"{header}.{forged}.{signature}") == "token signature is invalid"


def test_token_signed_with_another_key_is_refused() -> None:
    assert _rejected(_service(), _sign(_claims(), key=OLD_KEY)) == "token signature is invalid"


def test_previous_key_is_accepted_during_rotation_only() -> None:
    old_token = _sign(_claims(), key=OLD_KEY, kid="k0")
    rotating = _service(JWT_PREVIOUS_SECRET_KEY=OLD_KEY, JWT_PREVIOUS_KEY_ID="k0")
    assert rotating.decode(old_token).sub == "u1"
    # new tokens are signed by the current key only
    new_token = rotating.issue("u1", ADDRESS, Role.USER, "s1").token
    assert jwt.get_unverified_header(new_token)["kid"] == "k1"
    # after the window the previous kid is unknown
    assert _rejected(_service(), old_token) == "token key id is unknown"
    # a token claiming kid k0 but signed with the current key does not verify
    assert _rejected(rotating, _sign(_claims(), key=KEY, kid="k0")) == "token signature is invalid"


def test_token_without_kid_is_refused() -> None:
    assert _rejected(_service(), _sign(_claims(), kid=None)) == "token has no key id"


def test_refresh_token_is_not_an_access_token() -> None:
    refresh_token = secrets.token_urlsafe(32)
    assert _rejected(_service(), refresh_token) == "token is not a JWT"


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("a.b.c", "token is malformed"),
        ("..", "token is malformed"),
        ("x" * 5000, "token is too long"),
        ("", "token is not a JWT"),
        ("a.b.c.d", "token is not a JWT"),
    ],
)
def test_garbage_is_refused(token: str, detail: str) -> None:
    assert _rejected(_service(), token) == detail


def _signed_of_length(length: int) -> str:
    """A valid token exactly `length` characters long (an ignored claim pads it)."""
    pad = ""
    while len(token := _sign(_claims(pad=pad))) < length:
        pad += "x"
    assert len(token) == length
    return token


def test_the_length_bound_is_4096_characters() -> None:
    # GIVEN a valid token of exactly 4096 characters
    service = _service()
    longest = _signed_of_length(4096)
    # THEN it is accepted, and one character more is refused before any other check
    assert service.decode(longest).sub == "u1"
    assert _rejected(service, longest + "A") == "token is too long"


def test_garbage_payload_with_valid_header_is_malformed() -> None:
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    assert _rejected(_service(), f"{header}.!!!.sig") == "token is malformed"


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"a string"'])
def test_a_correctly_signed_payload_that_is_not_a_json_object_is_malformed(payload: bytes) -> None:
    # GIVEN a token signed with the deployment's key whose payload is not a JSON object
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    signing_input = f"{header}.{_b64(payload)}"
    mac = hmac.new(KEY.encode(), signing_input.encode(), hashlib.sha256).digest()
    # THEN it is refused as malformed (its signature is right: only its content is wrong)
    assert _rejected(_service(), f"{signing_input}.{_b64(mac)}") == "token is malformed"


def test_process_token_service_is_shared() -> None:
    service = get_token_service()
    assert service is get_token_service()
    assert service.decode(service.issue("u1", ADDRESS, Role.USER, "s1").token).sub == "u1"


@pytest.mark.parametrize("padding", ["=", "=="])
def test_a_valid_token_spelled_with_base64_padding_is_refused(padding: str) -> None:
    # GIVEN a valid token, and the same token with '=' padding on its signature (PyJWT accepts
    # it, for issuers such as AWS ALB: another Authorization value for the same signature)
    service = _service()
    token = service.issue("u1", ADDRESS, Role.USER, "s1").token
    assert service.decode(token).sub == "u1"
    # WHEN it is presented padded THEN it is refused: RFC 7515 compact serialization is
    # unpadded base64url, and we issue nothing else, so one token has exactly one spelling
    # (API Gateway caches each Authorization value's decision apart)
    assert _rejected(service, token + padding) == "token is malformed"


def test_a_token_minted_for_another_stage_is_refused_under_the_same_key() -> None:
    # GIVEN stages dev and prod that share one signing key
    dev, prod = _service(STAGE="dev"), _service(STAGE="prod")
    token = dev.issue("u1", ADDRESS, Role.USER, "s1").token
    # THEN each stage names itself in the tokens it mints
    claims = dev.decode(token)
    assert (claims.iss, claims.aud) == ("lucid-api-gateway/dev", "lucid/dev")
    # WHEN dev's token is presented to prod THEN prod refuses it, saying why
    assert _rejected(prod, token) == "token issuer is not accepted"
    # AND a token naming prod as its issuer but minted for dev's audience is refused too
    forged = _sign(_claims(iss="lucid-api-gateway/prod", aud="lucid/dev"))
    assert _rejected(prod, forged) == "token audience is not accepted"


def test_an_explicit_issuer_and_audience_win_over_the_stage_defaults() -> None:
    settings = Settings(STAGE="dev", JWT_ISSUER="https://auth.example", JWT_AUDIENCE="api")
    assert (settings.JWT_ISSUER, settings.JWT_AUDIENCE) == ("https://auth.example", "api")
    local = Settings(STAGE="local", JWT_ISSUER="", JWT_AUDIENCE="")  # the template's ""
    assert (local.JWT_ISSUER, local.JWT_AUDIENCE) == ("lucid-api-gateway/local", "lucid/local")
