"""Secrets by reference (moto stands in for Secrets Manager, SSM and IAM): every way a value is
read, cached and refused, and that no secret value reaches a log or a client.

The refusals (IAM, a KMS key policy, a KMS key itself) are AWS's own answers given to real boto3
clients with botocore's Stubber: moto's IAM enforcement answers with a code neither service sends.
"""

from __future__ import annotations

import functools
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from botocore.stub import Stubber
from fastapi import FastAPI
from moto import mock_aws

from lucid import secret_store
from lucid.auth import keys
from lucid.auth.keys import KeyRing, check_keys_at_cold_start
from lucid.config import Settings
from lucid.secret_store import SecretSource, SecretUnavailableError, read, read_text, source_of
from lucid.store.mongo import build_database
from lucid.store.redis_client import build_redis
from lucid.web.app import lambda_handler
from lucid.web.problems import install_problem_handlers
from lucid.web.ratelimit import RateLimitMiddleware
from lucid_edge.local import free_port
from tests.utils.events import http_event, reply_from
from tests.utils.logs import logged_lines

VALUE = "mongodb://lucid:s3cret-pa55@db.internal:27017/lucid"
ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Powertools and `read_versions` keep one client per process (credentials bound at
    creation), Powertools a cache too: each test starts without them, and with no remembered
    failure."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters_base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()
    secret_store._client.cache_clear()
    secret_store._failures = secret_store._Failures()
    yield
    parameters_base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()
    secret_store._client.cache_clear()
    secret_store._failures = secret_store._Failures()


def _name() -> str:
    return f"/lucid/test-{uuid.uuid4().hex[:8]}"


def _secret(value: str | bytes) -> str:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    name = _name().lstrip("/")
    if isinstance(value, bytes):
        return client.create_secret(Name=name, SecretBinary=value)["ARN"]
    return client.create_secret(Name=name, SecretString=value)["ARN"]


def _parameter(value: str) -> str:
    name = _name()
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=name, Value=value, Type="SecureString"
    )
    return name


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


@mock_aws
@pytest.mark.parametrize("kind", ["secretsmanager", "ssm"])
def test_a_uri_is_read_where_its_reference_points_and_cached(kind: str) -> None:
    # GIVEN the MongoDB URI kept in AWS, and only its reference in the settings
    if kind == "secretsmanager":
        settings = Settings(MONGODB_URI_SECRET_ARN=_secret(VALUE))
    else:
        settings = Settings(MONGODB_URI_PARAM=_parameter(VALUE))
    # WHEN the store asks for it THEN it is the value in AWS
    assert settings.required_uri("MONGODB_URI") == VALUE
    # AND a changed value is seen only once the cache lapses (Powertools' max_age)
    source = source_of(settings, "MONGODB_URI")
    assert source is not None
    if kind == "secretsmanager":
        boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
            SecretId=source.name, SecretString=VALUE + "?x=1"
        )
    else:
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name=source.name, Value=VALUE + "?x=1", Type="SecureString", Overwrite=True
        )
    assert settings.required_uri("MONGODB_URI") == VALUE
    parameters.clear_caches()
    assert settings.required_uri("MONGODB_URI") == VALUE + "?x=1"


@mock_aws
def test_values_read_from_aws_are_masked_in_library_lines_from_then_on() -> None:
    # GIVEN a deployed function's MongoDB URI and JWT key, kept in AWS (not in its environment),
    # the key rotated in place (the key it replaced still verifies tokens for a lifetime)
    key, replaced = ("jwt-key-read-from-aws-" + uuid.uuid4().hex for _ in range(2))
    name = _parameter(replaced)
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=name, Value=key, Type="SecureString", Overwrite=True
    )
    settings = Settings(MONGODB_URI_SECRET_ARN=_secret(VALUE), JWT_SECRET_PARAM=name)
    # WHEN they are read (the URI by its client, both keys by the key ring)
    assert settings.required_uri("MONGODB_URI") == VALUE
    source = source_of(settings, "JWT_SECRET_KEY")
    assert source is not None
    versions = secret_store.read_versions(source)
    assert (versions.current, versions.previous) == (key, replaced)
    # THEN a library line quoting them is written with the password and both keys masked
    with logged_lines() as lines:
        logging.getLogger("pymongo.client").warning(
            "auth failed: %s, key %s or %s", VALUE, key, replaced
        )
    (line,) = lines
    assert line["message"] == (
        "auth failed: mongodb://lucid:<redacted>@db.internal:27017/lucid, "
        "key <redacted> or <redacted>"
    )


@mock_aws
def test_the_secrets_manager_reference_wins_and_the_plain_value_is_the_fallback() -> None:
    arn, name = _secret("redis://from-secrets-manager:6379"), _parameter("redis://from-ssm:6379")
    both = Settings(REDIS_URI="redis://plain:6379", REDIS_URI_SECRET_ARN=arn, REDIS_URI_PARAM=name)
    assert both.required_uri("REDIS_URI") == "redis://from-secrets-manager:6379"
    assert Settings(REDIS_URI_PARAM=name).required_uri("REDIS_URI") == "redis://from-ssm:6379"
    assert Settings(REDIS_URI="redis://plain:6379").required_uri("REDIS_URI") == (
        "redis://plain:6379"
    )


@mock_aws
def test_a_binary_secret_is_bytes_and_text_only_when_it_decodes() -> None:
    source = SecretSource("JWT_SECRET_KEY", "secretsmanager", _secret(b"\x01" * 32))
    assert read(source) == b"\x01" * 32
    uri = SecretSource("MONGODB_URI", "secretsmanager", _secret(VALUE.encode()))
    assert read_text(uri) == VALUE
    garbage = SecretSource("MONGODB_URI", "secretsmanager", _secret(b"\xff\xfe"))
    with pytest.raises(SecretUnavailableError) as caught:
        read_text(garbage)
    assert "binary data, not text" in caught.value.reason


@mock_aws
@pytest.mark.parametrize("kind", ["secretsmanager", "ssm"])
def test_a_missing_secret_is_a_503_that_names_nothing_of_the_account_to_the_client(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a reference to a secret that does not exist
    name = (
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:lucid/nope-AbCdEf"
        if kind == "secretsmanager"
        else "/lucid/nope"
    )
    source = SecretSource("REDIS_URI", kind, name)  # type: ignore[arg-type]
    # WHEN it is read
    with (
        caplog.at_level(logging.ERROR, logger="lucid.secrets"),
        pytest.raises(SecretUnavailableError) as caught,
    ):
        read(source)
    # THEN the client's problem says only that a setting could not be read, and when to retry
    error = caught.value
    assert (error.status, error.slug) == (503, "secret-unavailable")
    assert ACCOUNT not in error.detail
    assert "nope" not in error.detail
    assert error.detail == (
        "a setting this function needs could not be read; the function's log says why"
    )
    assert error.headers["Retry-After"] == str(round(secret_store.RETRY_SECONDS))
    # AND the function's log names the setting and the missing resource
    assert "REDIS_URI unavailable" in _logged(caplog)
    assert "does not exist" in error.reason
    assert name in error.reason


# How Secrets Manager and SSM refuse a read, as botocore parses their answer: (service, code,
# AWS's message). The messages are AWS's own wording as field reports quote it (sources beside
# `_DENIED` and `_KMS_REFUSED` in lucid.secret_store). moto's IAM enforcement answers
# `AccessDenied` with HTTP 403 for every service (moto.core.exceptions.AccessDeniedError), which
# neither service sends (both answer AccessDeniedException with 400), so these answers are given
# to real boto3 clients with botocore's Stubber.
SM_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:lucid/prod/key-AbCdEf"
SSM_NAME = "/lucid/prod/key"
ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/lucid-users/fn"
KMS_NEEDED = "(and kms:Decrypt on its key) on "
KEY_REFUSED = "its KMS key must exist, be enabled and let the function's role use kms:Decrypt"
REFUSALS = [
    pytest.param(
        "secretsmanager",
        "AccessDeniedException",
        f"User: {ROLE} is not authorized to perform: secretsmanager:GetSecretValue on resource: "
        f"{SM_ARN} because no identity-based policy allows the secretsmanager:GetSecretValue "
        "action",
        f"it needs secretsmanager:GetSecretValue on {SM_ARN}",
        id="secretsmanager-iam",
    ),
    pytest.param(
        "secretsmanager",
        "AccessDeniedException",
        "Access to KMS is not allowed",
        f"it needs secretsmanager:GetSecretValue {KMS_NEEDED}{SM_ARN}",
        id="secretsmanager-kms-policy",
    ),
    pytest.param(
        "secretsmanager",
        "DecryptionFailure",
        "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
        KEY_REFUSED,
        id="secretsmanager-kms-key",
    ),
    pytest.param(
        "ssm",
        "AccessDeniedException",
        f"User: {ROLE} is not authorized to perform: ssm:GetParameter on resource: "
        f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{SSM_NAME} because no identity-based policy "
        "allows the ssm:GetParameter action",
        f"it needs ssm:GetParameter on arn:aws:ssm:<region>:<account>:parameter{SSM_NAME}",
        id="ssm-iam",
    ),
    pytest.param(
        "ssm",
        "AccessDeniedException",
        "The ciphertext refers to a customer master key that does not exist, does not exist in "
        "this region, or you are not allowed to access. (Service: AWSKMS; Status Code: 400; "
        "Error Code: AccessDeniedException; Request ID: r-1)",
        f"it needs ssm:GetParameter {KMS_NEEDED}arn:aws:ssm:<region>:<account>:parameter",
        id="ssm-kms-policy",
    ),
    pytest.param(
        "ssm",
        "InvalidKeyId",
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1 is disabled. (Service: AWSKMS; Status Code: 400; "
        "Error Code: DisabledException; Request ID: r-1)",
        KEY_REFUSED,
        id="ssm-kms-key",
    ),
]


def _refusing(service: str, code: str, message: str, status: int) -> Any:
    """A real boto3 client of `service` whose next read AWS refuses with `code`."""
    client: Any = boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]
    stubber = Stubber(client)
    operation = "get_secret_value" if service == "secretsmanager" else "get_parameter"
    stubber.add_client_error(operation, code, message, http_status_code=status)
    stubber.activate()
    return client


def _refused_read(
    kind: str,
    code: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
    status: int = 400,
    name: str = SSM_NAME,
) -> SecretUnavailableError:
    """What `read` (Powertools: the store URIs' path) raises when AWS refuses the read."""
    client = _refusing(kind, code, message, status)
    if kind == "secretsmanager":
        parameters_base.DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=client)
        source = SecretSource("MONGODB_URI", "secretsmanager", SM_ARN)
    else:
        parameters_base.DEFAULT_PROVIDERS["ssm"] = SSMProvider(boto3_client=client)
        source = SecretSource("MONGODB_URI", "ssm", name)
    with (
        caplog.at_level(logging.ERROR, logger="lucid.secrets"),
        pytest.raises(SecretUnavailableError) as caught,
    ):
        read(source)
    return caught.value


@pytest.mark.parametrize(("kind", "code", "message", "said"), REFUSALS)
def test_each_refusal_aws_answers_tells_the_operator_what_to_grant(
    kind: str, code: str, message: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the function's role may not read the store's URI (IAM, the KMS key policy, the key)
    # WHEN a request needs it
    error = _refused_read(kind, code, message, caplog)
    # THEN the client's 503 names nothing of the account, and the function's log line says what
    # to grant or fix, on which resource, with AWS's own words after it
    assert (error.status, error.slug) == (503, "secret-unavailable")
    assert ACCOUNT not in error.detail
    assert f"MONGODB_URI unavailable: {error.reason}" in _logged(caplog)
    assert said in error.reason
    assert f"({code}) when calling the" in error.reason
    # AND our words name the secret or parameter, whatever AWS's own (after them) say
    ours = error.reason.split(" (AWS: ")[0]
    assert (f"SSM parameter {SSM_NAME}" if kind == "ssm" else f"secret {SM_ARN}") in ours


@pytest.mark.parametrize(("kind", "code", "message", "said"), REFUSALS)
def test_each_refusal_of_the_jwt_key_tells_the_operator_what_to_grant(
    kind: str,
    code: str,
    message: str,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN the signing key kept where the function's role may not read it
    client = _refusing(kind, code, message, 400)
    monkeypatch.setattr(boto3, "client", lambda service, **options: client)
    if kind == "secretsmanager":
        ring = KeyRing(Settings(STAGE="prod", JWT_SECRET_ARN=SM_ARN))
    else:
        ring = KeyRing(Settings(STAGE="prod", JWT_SECRET_PARAM=SSM_NAME))
    # WHEN a token is signed or verified THEN it is the 503, and the log says what to grant
    with (
        caplog.at_level(logging.ERROR, logger="lucid.secrets"),
        pytest.raises(SecretUnavailableError) as caught,
    ):
        ring.keys()
    assert f"JWT_SECRET_KEY unavailable: {caught.value.reason}" in _logged(caplog)
    assert said in caught.value.reason


def _unreachable_reason(setting: str, caplog: pytest.LogCaptureFixture) -> str:
    """Why `setting`, kept in Secrets Manager, was not read: the 503's reason, also logged. The
    JWT key is read with boto3 itself, the MongoDB URI with Powertools."""
    needed: Callable[[], object]
    if setting == "JWT_SECRET_KEY":
        needed = KeyRing(Settings(STAGE="prod", JWT_SECRET_ARN=SM_ARN)).keys
    else:
        needed = functools.partial(read, SecretSource(setting, "secretsmanager", SM_ARN))
    with (
        caplog.at_level(logging.ERROR, logger="lucid.secrets"),
        pytest.raises(SecretUnavailableError) as caught,
    ):
        needed()
    assert f"{setting} unavailable: {caught.value.reason}" in _logged(caplog)
    return caught.value.reason


@pytest.mark.parametrize("setting", ["JWT_SECRET_KEY", "MONGODB_URI"])
def test_aws_out_of_reach_is_the_secrets_503_saying_what_failed(
    setting: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN AWS out of reach (a function in a VPC with no route to Secrets Manager): an
    # endpoint nobody listens on, one attempt; botocore's error then carries no AWS response
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # WHEN the JWT key or the MongoDB URI is needed THEN it is the secrets' 503, logged, saying
    # that AWS could not be reached, in botocore's words and the system's (not urllib3's
    # connection object, after a label calling them AWS's)
    assert _unreachable_reason(setting, caplog) == (
        f"Secrets Manager secret {SM_ARN} could not be read (could not reach AWS: Could not "
        f'connect to the endpoint URL: "http://127.0.0.1:{port}/": Connection refused)'
    )


@pytest.mark.parametrize("setting", ["JWT_SECRET_KEY", "MONGODB_URI"])
def test_aws_answering_no_connect_is_a_timeout_said_without_a_system_reason(
    setting: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN AWS behind a firewall that drops packets (a security group or a route to nowhere):
    # a listener that never accepts, its queue full (backlog 0, one connection waiting), so
    # Linux drops the next SYN and the connect waits; botocore's connect timeout is its
    # "in-region" defaults mode's 1.1 s (botocore/data/sdk-default-configuration.json
    # connectTimeoutInMillis; configprovider.py `_set_connectTimeoutInMillis`), one attempt
    with (
        socket.create_server(("127.0.0.1", 0), backlog=0) as listener,
        socket.create_connection(listener.getsockname()),
    ):
        port = listener.getsockname()[1]
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_DEFAULTS_MODE", "in-region")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # WHEN the JWT key or the MongoDB URI is needed THEN it is the secrets' 503, logged
        reason = _unreachable_reason(setting, caplog)
    # saying AWS could not be reached in botocore's words only: below them are urllib3's
    # timeout and the socket's TimeoutError("timed out"), which has no strerror, so no system
    # reason follows (nor an empty one, nor urllib3's connection object)
    assert reason == (
        f"Secrets Manager secret {SM_ARN} could not be read (could not reach AWS: Connect "
        f'timeout on endpoint URL: "http://127.0.0.1:{port}/")'
    )


def test_no_credentials_are_named_as_botocore_names_them_not_as_aws_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a function with no credentials at all (none in its environment, no files, no
    # instance metadata): botocore refuses before asking AWS anything
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # its credentials, once found, are kept
    # WHEN the signing key is needed THEN the 503's log line names botocore's error as it is
    with (
        caplog.at_level(logging.ERROR, logger="lucid.secrets"),
        pytest.raises(SecretUnavailableError) as caught,
    ):
        KeyRing(Settings(STAGE="prod", JWT_SECRET_ARN=SM_ARN)).keys()
    assert caught.value.reason == (
        f"Secrets Manager secret {SM_ARN} could not be read "
        "(NoCredentialsError: Unable to locate credentials)"
    )


def test_a_parameter_named_without_a_leading_slash_is_named_in_its_arn_with_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a parameter named without a leading slash, which the role may not read
    # WHEN it is read THEN the log names the resource to grant as IAM spells it (one slash
    # after "parameter": notes/aws-facts.md section 9)
    error = _refused_read(
        "ssm",
        "AccessDeniedException",
        f"User: {ROLE} is not authorized to perform: ssm:GetParameter",
        caplog,
        name="lucid/prod/key",
    )
    assert (
        "it needs ssm:GetParameter on arn:aws:ssm:<region>:<account>:parameter/lucid/prod/key (AWS:"
        in error.reason
    )


def test_a_refusal_of_the_credentials_themselves_sends_nobody_to_the_policy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN credentials AWS does not know (InvalidClientTokenId, HTTP 403: Common Errors), which
    # no permission on the secret can fix WHEN the URI is read THEN the log names AWS's code and
    # does not send the operator to the role's policy
    error = _refused_read(
        "ssm",
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
        caplog,
        status=403,
    )
    assert "could not be read" in error.reason
    assert "it needs" not in error.reason
    assert "(InvalidClientTokenId) when calling the GetParameter operation" in error.reason


@mock_aws
def test_a_failure_is_answered_from_memory_then_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(secret_store, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    name = _name()
    source = SecretSource("REDIS_URI", "ssm", name)
    with caplog.at_level(logging.ERROR, logger="lucid.secrets"):
        with pytest.raises(SecretUnavailableError):
            read(source)
        # WHEN the parameter appears (the operator fixed it) but the failure is recent
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name=name, Value="redis://r:6379", Type="SecureString"
        )
        clock[0] += 10 - 1  # the README's "retried every 10 s" (a literal, not the constant)
        # THEN requests are refused from memory, without asking AWS or logging again, and
        # told to come back when the retry is due: never "Retry-After: 0", even with 0.4 s left
        retry_after = []
        for step in (0, 0.6):
            clock[0] += step
            with pytest.raises(SecretUnavailableError) as again:
                read(source)
            retry_after.append(again.value.headers["Retry-After"])
        assert retry_after == ["1", "1"]
        assert len(caplog.records) == 1
    # AND once the retry interval has passed the value is read: no restart needed
    clock[0] += 0.9
    assert read(source) == "redis://r:6379"


@mock_aws
def test_a_jwt_key_that_cannot_be_read_does_not_stop_the_function_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the key's secret is missing WHEN the function starts THEN it starts
    arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:lucid/missing-AbCdEf"
    ring = KeyRing(Settings(STAGE="prod", JWT_SECRET_ARN=arn))
    monkeypatch.setattr(keys, "get_key_ring", lambda: ring)
    with caplog.at_level(logging.ERROR, logger="lucid.secrets"):
        check_keys_at_cold_start()
        # AND each use answers 503 until the key can be read, from memory within the retry
        # interval: the start's failed read is the one line logged
        for _ in range(2):
            with pytest.raises(SecretUnavailableError):
                ring.keys()
    logged = [record.getMessage().split(":")[0] for record in caplog.records]
    assert logged == ["JWT_SECRET_KEY unavailable"]
    # but a key that is unusable once read still stops it (a crash is the right answer then)
    short = KeyRing(Settings(STAGE="prod", JWT_SECRET_ARN=_secret("too-short")))
    monkeypatch.setattr(keys, "get_key_ring", lambda: short)
    with pytest.raises(keys.KeyConfigurationError, match="at least 32 bytes"):
        check_keys_at_cold_start()


def test_a_redis_uri_that_cannot_be_read_is_a_503_problem_from_the_rate_limiter() -> None:
    source = SecretSource("REDIS_URI", "ssm", "/lucid/prod/redis-uri")

    def unreadable() -> Any:
        raise SecretUnavailableError(source, "denied", 10)

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/x")
    async def route() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(RateLimitMiddleware, limiter_factory=unreadable)
    result = lambda_handler(app)(http_event("GET", "/x"), None)  # type: ignore[arg-type]
    reply = reply_from(result)
    assert reply.status == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["retry-after"] == "10"
    assert reply.body["type"].endswith("/secret-unavailable")


@mock_aws
@pytest.mark.parametrize("name", ["REDIS_URI", "MONGODB_URI"])
def test_a_store_uri_that_cannot_be_read_from_aws_is_the_secrets_503_not_the_stores(
    name: str,
) -> None:
    # GIVEN a deployed function whose store URI is referenced in Secrets Manager, which lacks it
    arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:lucid/{uuid.uuid4().hex}-AbCdEf"
    settings = Settings(STAGE="dev", JWT_SECRET_KEY="k" * 32, **{f"{name}_SECRET_ARN": arn})
    # WHEN its client is built THEN the secret's 503 comes through as it is: the caller is told
    # when to retry, and the store's "connection settings are not usable" is not said
    builder = build_redis if name == "REDIS_URI" else build_database
    with logged_lines() as lines, pytest.raises(SecretUnavailableError) as raised:
        builder(settings)
    assert (raised.value.status, raised.value.slug) == (503, "secret-unavailable")
    assert raised.value.headers["Retry-After"] == "10"  # the README's retry every 10 s
    assert not [line for line in lines if line.get("store")]
