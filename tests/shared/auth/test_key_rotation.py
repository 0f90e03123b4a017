"""Rotating the JWT key in place in Secrets Manager or SSM (moto): nobody is signed out, a stale
instance learns the new key from the first token it cannot verify, forged tokens cannot drive
calls to AWS, a replaced key stops verifying when its window ends or a second rotation drops
it (on a warm instance: at its next read), and a failed read of the previous version or a re-put
of the same value leaves the current key working.

Each `KeyRing` is one function instance (its own cache); its clock is the wall clock moved on by
the test, so "five minutes later" costs nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import jwt
import pytest
import redis
from botocore.stub import Stubber
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto import mock_aws
from pymongo.database import Database

from lucid import secret_store
from lucid.auth import keys
from lucid.auth.authorizer import authorize
from lucid.auth.keys import KeyRing
from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.revocation import RevocationList
from lucid.auth.signin import SignInService
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.errors import InvalidTokenError, UnknownNonceError
from lucid.identity import Role
from lucid.secret_store import SecretUnavailableError
from lucid.store import resp
from lucid.store.documents import new_id
from lucid.store.keys import nonce_key
from lucid.users.repository import UserRepository
from lucid_edge.local import in_memory_database
from tests.utils.auth_flow import authorizer_event
from tests.utils.datastore import atomic_writes, database_for, revocations_on
from tests.utils.logs import logged_lines
from tests.utils.wallets import Wallet

OLD, NEW, NEWER = ("o" * 40, "n" * 40, "w" * 40)
ADDRESS = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"


class Clock:
    """The wall clock, moved on by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Store:
    """One JWT key kept in Secrets Manager or SSM: rotated in place as an operator would."""

    def __init__(self, kind: str, value: str) -> None:
        self.kind = kind
        self._client: Any
        if kind == "secretsmanager":
            self._client = boto3.client("secretsmanager", region_name="us-east-1")
            self.where = self._client.create_secret(
                Name=f"jwt-{uuid.uuid4().hex}", SecretString=value
            )["ARN"]
        else:
            self._client = boto3.client("ssm", region_name="us-east-1")
            self.where = f"/lucid/{uuid.uuid4().hex}/jwt"
            self._client.put_parameter(Name=self.where, Value=value, Type="SecureString")

    def rotate(self, value: str) -> None:
        """A new value of the same secret (PutSecretValue) or parameter (PutParameter)."""
        if self.kind == "secretsmanager":
            self._client.put_secret_value(SecretId=self.where, SecretString=value)
        else:
            self._client.put_parameter(
                Name=self.where, Value=value, Type="SecureString", Overwrite=True
            )

    def settings(self, **values: Any) -> Settings:
        reference = "JWT_SECRET_ARN" if self.kind == "secretsmanager" else "JWT_SECRET_PARAM"
        return Settings(STAGE="prod", JWT_SECRET_KEY=None, **{reference: self.where}, **values)


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    secret_store._client.cache_clear()
    monkeypatch.setattr(secret_store, "_failures", secret_store._Failures())
    with mock_aws():
        yield
    secret_store._client.cache_clear()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of the key material from AWS (what reaches Secrets Manager or SSM)."""
    made: list[str] = []
    real = secret_store.read_versions

    def counted(source: secret_store.SecretSource) -> secret_store.Versions:
        made.append(source.name)
        return real(source)

    monkeypatch.setattr(secret_store, "read_versions", counted)
    return made


KINDS = pytest.mark.parametrize("kind", ["secretsmanager", "ssm"])


def _instance(settings: Settings, clock: Callable[[], float] = time.time) -> TokenService:
    """One function instance: its own key ring and cache."""
    return TokenService(settings, KeyRing(settings, clock=clock))


def _issue(service: TokenService) -> str:
    return service.issue("u1", ADDRESS, Role.USER, "s1").token


def _signed_with(secret: str, kid: str = "k1") -> str:
    """A token with valid claims signed with `secret` (what an instance holding it issues)."""
    return _issue(_instance(Settings(STAGE="prod", JWT_SECRET_KEY=secret, JWT_KEY_ID=kid)))


@KINDS
def test_rotating_in_place_keeps_tokens_issued_before_valid_until_they_expire(kind: str) -> None:
    # GIVEN an instance that issued a token with the old key
    store = Store(kind, OLD)
    clock = Clock()
    service = _instance(store.settings(), clock)
    before = _issue(service)
    # WHEN the operator rotates the key in place and the instance's cache lapses
    store.rotate(NEW)
    clock.offset += keys.DEFAULT_MAX_AGE_SECONDS
    # THEN new tokens are signed with the new key only
    after = _issue(service)
    jwt.decode(after, NEW, algorithms=["HS256"], audience="lucid/prod")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(after, OLD, algorithms=["HS256"], audience="lucid/prod")
    # AND the token issued before still verifies, as does the new one (nobody is signed out)
    assert service.decode(before).sub == "u1"
    assert service.decode(after).sub == "u1"
    # AND a token of the old key verifies until its own expiry at the latest: the replaced key
    # is kept for the cache age plus a token lifetime (plus a minute of clock skew), then dropped
    ring = KeyRing(store.settings(), clock=clock)
    assert len(ring.keys().previous) == 1
    window = ring.previous_window
    # README, "Rotating the signing key": 5 minutes + TOKEN_EXPIRE_MINUTES + 1 minute, 21 minutes
    # by default (literal, so that a changed constant cannot move the test's bound with it)
    assert window == 21 * 60
    clock.offset += window
    assert ring.keys().previous == ()


@KINDS
def test_a_stale_instance_verifies_a_new_key_token_after_one_re_read(
    kind: str, reads: list[str]
) -> None:
    # GIVEN an authorizer instance that read the key just before the rotation
    store = Store(kind, OLD)
    clock = Clock()
    stale = _instance(store.settings(), clock)
    assert stale.decode(_issue(stale)).sub == "u1"
    assert len(reads) == 1
    # WHEN the key is rotated and an auth instance that read it after issues a token
    store.rotate(NEW)
    fresh_token = _issue(_instance(store.settings()))
    # THEN the stale instance, whose cache has not lapsed, re-reads once and verifies it
    clock.offset += 10
    assert stale.decode(fresh_token).sub == "u1"
    assert len(reads) == 3  # the auth instance's read, then the stale instance's one re-read
    # AND further tokens of the new key verify from its refreshed cache, without another read
    assert stale.decode(_issue(_instance(Settings(STAGE="prod", JWT_SECRET_KEY=NEW)))).sub == "u1"
    assert len(reads) == 3
    # AND the re-read restarted the 5-minute cache: 5 minutes after the first read (4:50 after
    # the re-read) the instance still asks AWS nothing
    clock.offset += 290
    assert stale.decode(fresh_token).sub == "u1"
    assert len(reads) == 3


@KINDS
def test_a_token_of_an_unknown_key_is_denied_and_re_reads_at_most_once_per_window(
    kind: str, reads: list[str]
) -> None:
    store = Store(kind, OLD)
    clock = Clock()
    service = _instance(store.settings(), clock)
    service.decode(_issue(service))
    assert len(reads) == 1
    # WHEN many tokens with our kid but forged with other keys arrive
    for _ in range(20):
        with pytest.raises(InvalidTokenError) as denied:
            service.decode(_signed_with(uuid.uuid4().hex * 2))
        assert denied.value.detail == "token signature is invalid"
    # THEN AWS was asked once more, not twenty times
    assert len(reads) == 2
    # AND once more per 30 s at most (README; literal, so that a changed constant cannot move
    # the test's bound with it)
    clock.offset += 30 - 1
    with pytest.raises(InvalidTokenError):
        service.decode(_signed_with(uuid.uuid4().hex * 2))
    assert len(reads) == 2
    clock.offset += 1
    with pytest.raises(InvalidTokenError):
        service.decode(_signed_with(uuid.uuid4().hex * 2))
    assert len(reads) == 3


@KINDS
def test_a_kid_that_names_no_key_is_denied_with_the_existing_error_and_no_re_read(
    kind: str, reads: list[str]
) -> None:
    store = Store(kind, OLD)
    service = _instance(store.settings())
    # GIVEN a token signed with the right key, but under a key id we do not have
    token = _signed_with(OLD, kid="k-other")
    # THEN it is refused as before, saying nothing about the keys we hold
    with pytest.raises(InvalidTokenError) as denied:
        service.decode(token)
    assert denied.value.detail == "token key id is unknown"
    assert "k1" not in denied.value.detail
    # AND no re-read of AWS: key ids come from the configuration, not from AWS's material
    assert len(reads) == 1


@KINDS
def test_a_second_rotation_drops_the_key_before_the_previous(kind: str) -> None:
    # GIVEN tokens of the first key and a rotation in place
    store = Store(kind, OLD)
    clock = Clock()
    first = _signed_with(OLD)
    store.rotate(NEW)
    second = _signed_with(NEW)
    service = _instance(store.settings(), clock)
    assert service.decode(first).sub == "u1"
    # WHEN the key is rotated again (inside the first one's window) and the cache lapses
    store.rotate(NEWER)
    clock.offset += keys.DEFAULT_MAX_AGE_SECONDS
    # THEN the first key no longer verifies: AWS keeps one previous value, the second's
    with pytest.raises(InvalidTokenError) as denied:
        service.decode(first)
    assert denied.value.detail == "token signature is invalid"
    assert service.decode(second).sub == "u1"
    assert service.decode(_signed_with(NEWER)).sub == "u1"


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_an_es256_private_key_rotated_in_place_keeps_its_tokens_valid() -> None:
    # GIVEN an ES256 private key in Secrets Manager and a token it signed
    store = Store("secretsmanager", _private_pem(ec.generate_private_key(ec.SECP256R1())))
    clock = Clock()
    service = _instance(store.settings(JWT_ALGORITHM="ES256"), clock)
    before = _issue(service)
    # WHEN it is rotated in place
    store.rotate(_private_pem(ec.generate_private_key(ec.SECP256R1())))
    clock.offset += keys.DEFAULT_MAX_AGE_SECONDS
    # THEN the old key verifies (its public half only: it signs nothing) and the new one signs
    assert service.decode(before).sub == "u1"
    assert service.decode(_issue(service)).sub == "u1"
    assert KeyRing(store.settings(JWT_ALGORITHM="ES256")).keys().previous[0].signing is None


def test_an_unusable_previous_value_is_left_out_and_the_current_key_still_works() -> None:
    # GIVEN a secret whose previous value is too short to be a key outside the local stage
    store = Store("secretsmanager", "short")
    store.rotate(NEW)
    # WHEN a function reads it THEN it verifies with the current key only, and its log (the
    # function's JSON lines) says why in one WARNING line
    with logged_lines() as lines:
        service = _instance(store.settings())
        assert service.decode(_issue(service)).sub == "u1"
    assert [(line["level"], line["message"]) for line in lines] == [
        (
            "WARNING",
            "the JWT key's previous version is not used: the HS256 key must be at least 32 "
            "bytes outside the local stage",
        )
    ]
    with pytest.raises(InvalidTokenError):
        service.decode(_signed_with("short" * 8))


@pytest.fixture
def database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes(), database_for("auth") as db:
        yield db


@KINDS
def test_the_authorizer_allows_a_new_key_token_instead_of_a_cached_deny(
    kind: str, database: Database[dict[str, Any]], store_redis: resp.Redis
) -> None:
    # GIVEN an authorizer instance holding the old key, and a rotation in place
    store = Store(kind, OLD)
    clock = Clock()
    stale = _instance(store.settings(), clock)
    stale.decode(_issue(stale))
    store.rotate(NEW)
    # WHEN a caller presents a token the auth function signed with the new key
    token = _instance(store.settings()).issue("u1", ADDRESS, Role.USER, new_id()).token
    decision = authorize(
        authorizer_event(f"Bearer {token}"),
        tokens=stale,
        revocations=revocations_on(store_redis, database),
    )
    # THEN it is allowed (a Deny here would be cached by API Gateway for the TTL)
    assert decision["isAuthorized"] is True
    assert decision["context"]["user_id"] == "u1"


def _answers(service: str, *responses: tuple[str, dict[str, Any]]) -> Stubber:
    """AWS's answers to the next calls of the process's `service` client, in order (an error
    when the second item names one): what moto cannot be made to answer."""
    stubber = Stubber(secret_store._client(service))
    for operation, answer in responses:
        if "Error" in answer:
            stubber.add_client_error(operation, answer["Error"], http_status_code=400)
        else:
            stubber.add_response(operation, answer)
    stubber.activate()
    return stubber


ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf"
PARAMETER = "/lucid/prod/jwt-key"


def _secret(value: str, created: datetime | None = None) -> dict[str, Any]:
    return {"ARN": ARN, "SecretString": value, "CreatedDate": created or datetime.now(UTC)}


def _parameter(value: str, version: int, modified: datetime | None = None) -> dict[str, Any]:
    when = modified or datetime.now(UTC)
    return {"Parameter": {"Value": value, "Version": version, "LastModifiedDate": when}}


@pytest.mark.parametrize(
    ("code", "logged"),
    [
        ("AccessDeniedException", f"it needs secretsmanager:GetSecretValue on {ARN}"),
        ("ThrottlingException", "(ThrottlingException)"),
    ],
)
def test_a_refused_read_of_the_previous_version_keeps_the_current_key_and_names_why(
    code: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a role that may read the secret's current version but not AWSPREVIOUS (a
    # secretsmanager:VersionStage condition), or AWS throttling the second call
    failed = {"Error": code}
    stubber = _answers(
        "secretsmanager", ("get_secret_value", _secret(NEW)), ("get_secret_value", failed)
    )
    # WHEN the key is read THEN the current key still signs and verifies
    with caplog.at_level(logging.WARNING, logger="lucid.secrets"):
        service = _instance(Settings(STAGE="prod", JWT_SECRET_ARN=ARN))
        assert service.decode(_issue(service)).sub == "u1"
    stubber.assert_no_pending_responses()
    # AND the log warns that the previous version is not used, naming the permission or code
    assert "JWT_SECRET_KEY: the previous version is not used" in caplog.text
    assert logged in caplog.text
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert NEW not in caplog.text


def test_a_refused_read_of_the_current_version_is_a_503_naming_the_permission(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stubber = _answers("secretsmanager", ("get_secret_value", {"Error": "AccessDeniedException"}))
    with (
        caplog.at_level(logging.ERROR, logger="lucid.secrets"),
        pytest.raises(SecretUnavailableError) as refused,
    ):
        KeyRing(Settings(STAGE="prod", JWT_SECRET_ARN=ARN)).keys()
    stubber.assert_no_pending_responses()
    assert f"it needs secretsmanager:GetSecretValue on {ARN}" in refused.value.reason
    assert refused.value.reason in caplog.text


def test_a_throttled_read_of_the_previous_parameter_version_keeps_the_current_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed = {"Error": "ThrottlingException"}
    stubber = _answers("ssm", ("get_parameter", _parameter(NEW, 2)), ("get_parameter", failed))
    with caplog.at_level(logging.WARNING, logger="lucid.secrets"):
        keys_read = KeyRing(Settings(STAGE="prod", JWT_SECRET_PARAM=PARAMETER)).keys()
    stubber.assert_no_pending_responses()
    assert keys_read.current.signing == NEW.encode()
    assert keys_read.previous == ()
    assert "(ThrottlingException) when calling the GetParameter operation" in caplog.text
    assert NEW not in caplog.text


def test_a_failed_re_read_of_the_previous_version_keeps_the_previous_key_already_read() -> None:
    # GIVEN an instance that read the current key and the one it replaced
    clock = Clock()
    ring = KeyRing(Settings(STAGE="prod", JWT_SECRET_ARN=ARN), clock=clock)
    service = TokenService(Settings(STAGE="prod", JWT_SECRET_ARN=ARN), ring)
    throttled = {"Error": "ThrottlingException"}
    stubber = _answers(
        "secretsmanager",
        ("get_secret_value", _secret(NEW)),
        ("get_secret_value", _secret(OLD)),
        ("get_secret_value", _secret(NEW)),
        ("get_secret_value", throttled),
    )
    before = _signed_with(OLD)
    assert service.decode(before).sub == "u1"
    # WHEN its cache lapses and AWS throttles the re-read of AWSPREVIOUS only
    clock.offset += keys.DEFAULT_MAX_AGE_SECONDS
    # THEN the current value is the same: the previous key read with it still verifies
    assert service.decode(before).sub == "u1"
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("version", "trimmed"), [(101, [100]), (1, [])])
def test_a_parameter_whose_previous_version_aws_no_longer_keeps_has_no_previous_key(
    version: int, trimmed: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a parameter at version 101, whose version 100 AWS has dropped (it keeps 100), or
    # one never changed (version 1)
    gone = ("get_parameter", {"Error": "ParameterVersionNotFound"})
    stubber = _answers("ssm", ("get_parameter", _parameter(NEW, version)), *[gone for _ in trimmed])
    asked: list[str] = []
    secret_store._client("ssm").meta.events.register(
        "provide-client-params.ssm.GetParameter", lambda params, **_: asked.append(params["Name"])
    )
    # THEN the current key works alone
    with caplog.at_level(logging.WARNING, logger="lucid.secrets"):
        keys_read = KeyRing(Settings(STAGE="prod", JWT_SECRET_PARAM=PARAMETER)).keys()
    stubber.assert_no_pending_responses()
    assert keys_read.current.signing == NEW.encode()
    assert keys_read.previous == ()
    # AND AWS is asked for no older version (it keeps none older, and has no version 0), and
    # nothing is logged: a version AWS trimmed is no failure to read
    assert asked == [PARAMETER, *(f"{PARAMETER}:{older}" for older in trimmed)]
    assert caplog.records == []


def test_an_ssm_re_put_of_the_same_value_keeps_the_key_it_replaced() -> None:
    # GIVEN a token of the old key and a rotation in place
    store = Store("ssm", OLD)
    before = _signed_with(OLD)
    store.rotate(NEW)
    # WHEN the parameter is put again with the same value (a description edit, a stack update)
    store.rotate(NEW)
    store.rotate(NEW)
    # THEN tokens of the old key still verify, as do the new key's
    service = _instance(store.settings())
    assert service.decode(before).sub == "u1"
    assert service.decode(_issue(service)).sub == "u1"


@pytest.mark.parametrize(("re_puts", "old_key_verifies"), [(4, True), (5, False)])
def test_up_to_four_re_puts_of_the_same_value_keep_the_key_it_replaced(
    re_puts: int, old_key_verifies: bool
) -> None:
    # GIVEN a token of the old key, a rotation in place, then the same value put again and again
    # (the README's "up to 4 of them in a row": the walk reads PARAMETER_VERSIONS_WALKED older
    # versions, the one that changed the value among them)
    store = Store("ssm", OLD)
    before = _signed_with(OLD)
    for _ in range(1 + re_puts):
        store.rotate(NEW)
    # THEN the old key's token verifies after 4 re-puts, and is refused after a 5th
    service = _instance(store.settings())
    if old_key_verifies:
        assert service.decode(before).sub == "u1"
    else:
        with pytest.raises(InvalidTokenError):
            service.decode(before)


def test_the_window_counts_from_the_version_that_changed_the_value() -> None:
    # GIVEN version 4 re-putting version 3's value 10 minutes later, version 2 the real
    # rotation 20 minutes ago, from version 1
    now = datetime.now(UTC)
    real = now.timestamp() - 20 * 60
    stubber = _answers(
        "ssm",
        ("get_parameter", _parameter(NEW, 4, now)),
        ("get_parameter", _parameter(NEW, 3, datetime.fromtimestamp(real + 600, UTC))),
        ("get_parameter", _parameter(NEW, 2, datetime.fromtimestamp(real, UTC))),
        ("get_parameter", _parameter(OLD, 1)),
    )
    versions = secret_store.read_versions(secret_store.SecretSource("k", "ssm", PARAMETER))
    stubber.assert_no_pending_responses()
    assert versions == secret_store.Versions(NEW, real, OLD)


def test_the_walk_past_same_value_versions_is_bounded() -> None:
    walked = secret_store.PARAMETER_VERSIONS_WALKED
    answers = [("get_parameter", _parameter(NEW, 50 - step)) for step in range(walked + 1)]
    stubber = _answers("ssm", *answers)
    versions = secret_store.read_versions(secret_store.SecretSource("k", "ssm", PARAMETER))
    stubber.assert_no_pending_responses()
    assert versions.previous is None
    assert versions.current == NEW


def test_a_secrets_manager_re_put_of_the_same_value_drops_the_previous_key() -> None:
    # GIVEN a token of the old key and a rotation in place
    store = Store("secretsmanager", OLD)
    before = _signed_with(OLD)
    store.rotate(NEW)
    # WHEN the same value is put again: AWSPREVIOUS now holds the current value
    store.rotate(NEW)
    # THEN tokens of the old key are refused (README: operators must not), the new key's verify
    service = _instance(store.settings())
    with pytest.raises(InvalidTokenError):
        service.decode(before)
    assert service.decode(_issue(service)).sub == "u1"


@KINDS
def test_a_leaked_key_rotated_out_twice_verifies_on_a_warm_instance_until_its_cache_lapses(
    kind: str,
) -> None:
    # GIVEN an instance that read the key before the first rotation, and one that read it after
    store = Store(kind, OLD)
    clock = Clock()
    stale = _instance(store.settings(), clock)
    stale.decode(_issue(stale))
    leaked = _signed_with(OLD)
    store.rotate(NEW)
    warm = _instance(store.settings(), clock)
    warm.decode(_issue(warm))
    # WHEN the leaked key is rotated out twice in a row
    store.rotate(NEWER)
    # THEN the warm instance accepts its tokens until its cached read is 5 minutes old
    clock.offset += keys.DEFAULT_MAX_AGE_SECONDS - 1
    assert warm.decode(leaked).sub == "u1"
    # AND the stale instance still signs with it until then
    jwt.decode(_issue(stale), OLD, algorithms=["HS256"], audience="lucid/prod")
    # AND from then on neither accepts it, and both sign with the newest key
    clock.offset += 1
    for service in (warm, stale):
        with pytest.raises(InvalidTokenError):
            service.decode(leaked)
        jwt.decode(_issue(service), NEWER, algorithms=["HS256"], audience="lucid/prod")


@dataclass
class AuthInstance:
    """One auth function instance whose key lives in SSM, over the real Redis and an in-memory
    MongoDB; `key_unreadable` and `key_readable_again` break and mend its next read of the key."""

    store: Store
    clock: Clock
    service: SignInService
    revocations: RevocationList
    database: Database[Any]
    monkeypatch: pytest.MonkeyPatch

    def key_unreadable(self) -> None:
        # The parameter gone (as SSM throttling, KMS or a missing grant would be) when the
        # cached read lapses: the next use of the key is a SecretUnavailableError (503).
        boto3.client("ssm", region_name="us-east-1").delete_parameter(Name=self.store.where)
        self.clock.offset += keys.DEFAULT_MAX_AGE_SECONDS

    def key_readable_again(self) -> None:
        self.store.rotate(OLD)
        self.monkeypatch.setattr(secret_store, "_failures", secret_store._Failures())

    def decode(self, token: str) -> Any:
        return _instance(self.store.settings(), self.clock).decode(token)


@pytest.fixture
def auth_instance(
    redis_client: redis.Redis, store_redis: resp.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AuthInstance]:
    store, clock = Store("ssm", OLD), Clock()
    settings = store.settings()
    with atomic_writes():
        database = in_memory_database()
        revocations = revocations_on(store_redis, database)
        service = SignInService(
            settings,
            store_redis,
            UserRepository(database),
            RefreshTokenStore(database, timedelta(days=14), revocations),
            _instance(settings, clock),
            api_url="https://api.lucid.test",  # a deployed stage's messages name its URL
        )
        yield AuthInstance(store, clock, service, revocations, database, monkeypatch)


def test_a_refresh_that_cannot_read_the_key_spends_nothing_and_its_retry_succeeds(
    auth_instance: AuthInstance,
) -> None:
    # GIVEN a sign-in on an auth instance whose key lives in SSM
    service, wallet = auth_instance.service, Wallet()
    challenge = service.challenge(wallet.address)
    pair = service.login(wallet.address, challenge.message, wallet.sign(challenge.message))
    # WHEN the instance's next read of the key fails during a refresh: a 503 for the client
    auth_instance.key_unreadable()
    with pytest.raises(SecretUnavailableError):
        service.refresh(pair.refresh_token)
    # THEN the refresh token was not spent: once SSM answers again, the client's retry gets a
    # new pair instead of being taken for a thief (reuse would revoke the whole sign-in)
    auth_instance.key_readable_again()
    renewed = service.refresh(pair.refresh_token)
    assert not auth_instance.revocations.is_revoked(auth_instance.decode(renewed.access_token).sid)
    assert auth_instance.database["tokens"].count_documents({"revoked_at": {"$ne": None}}) == 0


def test_a_login_that_cannot_read_the_key_keeps_its_nonce_for_the_retry(
    auth_instance: AuthInstance, redis_client: redis.Redis
) -> None:
    # GIVEN a challenge signed by the wallet, on an auth instance whose key lives in SSM
    service, wallet = auth_instance.service, Wallet()
    challenge = service.challenge(wallet.address)
    signature = wallet.sign(challenge.message)
    # WHEN the login cannot sign the tokens (503) after the signature was verified
    auth_instance.key_unreadable()
    with pytest.raises(SecretUnavailableError):
        service.login(wallet.address, challenge.message, signature)
    # THEN the nonce is live again for what is left of its 5 minutes (issued moments ago)
    stage = auth_instance.store.settings().STAGE
    assert 240_000 < redis_client.pttl(nonce_key(challenge.nonce, stage)) <= 300_000
    # AND the client's retry of the same signed message signs in, without a new wallet prompt,
    # once the key can be read again
    auth_instance.key_readable_again()
    pair = service.login(wallet.address, challenge.message, signature)
    assert auth_instance.decode(pair.access_token).addr == wallet.address
    # AND the nonce is spent by that success: a replay is refused
    with pytest.raises(UnknownNonceError):
        service.login(wallet.address, challenge.message, signature)


# --- RS256 with a verify-only authorizer: it reads the public key, never the private key --------


def _rsa_pair() -> tuple[str, str]:
    """A fresh RS256 key pair as PEM: (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _private_pem(key), public.decode()


def _rs256(private: Store | None = None, public: Store | None = None) -> Settings:
    """An RS256 function's settings: the auth function's (the private key's secret) or the
    authorizer's (the public key's parameter only, as the template gives it)."""
    return Settings(
        STAGE="prod",
        JWT_SECRET_KEY=None,
        JWT_ALGORITHM="RS256",
        JWT_SECRET_ARN=private.where if private else None,
        JWT_PUBLIC_KEY_PARAM=public.where if public else None,
    )


def test_an_rs256_authorizer_verifies_reading_the_public_key_only(
    reads: list[str], database: Database[dict[str, Any]], store_redis: resp.Redis
) -> None:
    # GIVEN the private key in Secrets Manager (the auth function's) and the public key in SSM
    private_pem, public_pem = _rsa_pair()
    private, public = Store("secretsmanager", private_pem), Store("ssm", public_pem)
    token = _instance(_rs256(private=private)).issue("u1", ADDRESS, Role.USER, new_id()).token
    reads.clear()
    # WHEN the authorizer, given the public key's parameter alone, checks the auth's token
    authorizer = _instance(_rs256(public=public))
    revocations = revocations_on(store_redis, database)
    decision = authorize(
        authorizer_event(f"Bearer {token}"), tokens=authorizer, revocations=revocations
    )
    # THEN it allows it, having read the public key and nothing else
    assert decision["isAuthorized"] is True
    assert reads == [public.where]
    assert KeyRing(_rs256(public=public)).keys().current.signing is None  # it can sign nothing
    # AND a token signed with another private key is denied
    forged = _instance(
        Settings(STAGE="prod", JWT_ALGORITHM="RS256", JWT_PRIVATE_KEY=_rsa_pair()[0])
    )
    denied = authorize(
        authorizer_event(f"Bearer {_issue(forged)}"), tokens=authorizer, revocations=revocations
    )
    assert denied["isAuthorized"] is False


def test_rotating_an_rs256_key_pair_in_the_documented_order_signs_nobody_out() -> None:
    # GIVEN an auth instance and an authorizer instance with the old key pair, warm
    old_private, old_public = _rsa_pair()
    new_private, new_public = _rsa_pair()
    private, public = Store("secretsmanager", old_private), Store("ssm", old_public)
    clock = Clock()
    authorizer = _instance(_rs256(public=public), clock)
    authorizer.decode(_issue(_instance(_rs256(private=private), clock)))
    # WHEN the operator publishes the new public key, waits out the authorizer's cache and, at
    # the end of the slot, rotates the private key, while an auth instance that read the old
    # private key just before keeps signing with it until its own cache lapses
    public.rotate(new_public)
    # (README, "Rotating an RS256/ES256 key pair", in minutes: wait 5, rotate within the next 10;
    # the replaced public key verifies for 5 + 10 + 5 + TOKEN_EXPIRE_MINUTES + 1, 36 by default)
    clock.offset += 5 * 60 + 10 * 60
    stale_auth = _instance(_rs256(private=private), clock)
    _issue(stale_auth)
    private.rotate(new_private)
    clock.offset += 5 * 60 - 1
    last_old = _issue(stale_auth)
    new = _issue(_instance(_rs256(private=private), clock))
    jwt.decode(new, new_public, algorithms=["RS256"], audience="lucid/prod")
    # THEN the new key's tokens verify, and the old key's last token verifies until it expires
    assert authorizer.decode(new).sub == "u1"
    clock.offset += 15 * 60
    assert authorizer.decode(last_old).sub == "u1"
    assert authorizer.decode(new).sub == "u1"
    # AND once the window has passed, the old key verifies nothing, even after a re-read
    clock.offset += 60 + 1  # 36 minutes after the public key's change
    assert KeyRing(_rs256(public=public)).previous_window == 36 * 60  # README, a literal
    with pytest.raises(InvalidTokenError):
        authorizer.decode(last_old)
    assert authorizer.decode(new).sub == "u1"
