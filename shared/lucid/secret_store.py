"""Secrets held in AWS: read by reference, cached, and refused with a reason an operator can act on.

A deployed function never receives a secret in its environment; it receives where to read it
(infra/needs.yaml declares which function gets which):

    setting          Secrets Manager (first)     SSM Parameter Store (SecureString)
    JWT_SECRET_KEY   JWT_SECRET_ARN              JWT_SECRET_PARAM
    JWT_PUBLIC_KEY   JWT_PUBLIC_KEY_ARN          JWT_PUBLIC_KEY_PARAM   (RS256/ES256, verify-only)
    MONGODB_URI      MONGODB_URI_SECRET_ARN      MONGODB_URI_PARAM
    REDIS_URI        REDIS_URI_SECRET_ARN        REDIS_URI_PARAM

With neither reference set, the setting's own variable is the value (the local edge, sam local).
Values are read with Powertools Parameters: one GetSecretValue / GetParameter per `max_age`
(Powertools' default 300 s, POWERTOOLS_PARAMETERS_MAX_AGE) per process, so a value read at each
use follows a rotation without a redeploy. The MongoDB and Redis URIs are read once, when the
process's client is built: a warm process keeps its URI (README, "Secrets on a deployed stage").
Powertools (and boto3 with it) is imported only when a reference is set: a function configured
without one never pays for it at cold start.

A read that fails (the role lacks the permission, the secret does not exist, KMS refuses, AWS is
unreachable) raises `SecretUnavailableError`: a 503 whose detail tells the client nothing about
the account, while the function's log names the setting, the permission the role needs and the
resource, once per `RETRY_SECONDS`; until then the failure is answered from memory, so a missing
permission neither hammers AWS nor crashes the function into a start-up loop, and granting it
heals a warm function within `RETRY_SECONDS`. Secret values are never logged: Powertools wraps
every error in `GetParameterError(str(error))`, whose text holds ARNs and AWS's reason only
(notes/aws-facts.md section 10).

The JWT keys (the signing key, or a verify-only function's public key) are read by
`read_versions` instead: the current value and the value it replaced, which AWS keeps on a
rotation in place (`lucid.auth.keys` verifies tokens of both for a token lifetime). The caller
(`lucid.auth.keys.KeyRing`) caches the result itself.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from lucid import log_masking
from lucid.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from lucid.config import Settings

logger = logging.getLogger("lucid.secrets")

# setting -> (variable holding its Secrets Manager ARN, variable holding its SSM parameter name)
REFERENCES: Mapping[str, tuple[str, str]] = {
    "JWT_SECRET_KEY": ("JWT_SECRET_ARN", "JWT_SECRET_PARAM"),
    "JWT_PUBLIC_KEY": ("JWT_PUBLIC_KEY_ARN", "JWT_PUBLIC_KEY_PARAM"),
    "MONGODB_URI": ("MONGODB_URI_SECRET_ARN", "MONGODB_URI_PARAM"),
    "REDIS_URI": ("REDIS_URI_SECRET_ARN", "REDIS_URI_PARAM"),
}
RETRY_SECONDS = 10.0
# The codes Secrets Manager (GetSecretValue) and SSM (GetParameter) refuse a read with:
# - AccessDeniedException, HTTP 400, for a role without the action on the resource, and for a
#   KMS key policy refusing it kms:Decrypt: Secrets Manager says "Access to KMS is not allowed"
#   (re:Post "secrets-manager-cross-account-key"), SSM relays KMS's "(Service: AWSKMS; ...
#   Error Code: AccessDeniedException)". Secrets Manager API reference, "Common Errors"; SSM:
#   botocore's SSM.Client.exceptions.AccessDeniedException. ("AccessDenied" and
#   "UnauthorizedOperation" are other services' codes: IAM/STS and EC2.)
_DENIED = ("AccessDeniedException",)
# - DecryptionFailure (GetSecretValue) and InvalidKeyId (GetParameter): KMS would not decrypt
#   the value for the key's sake (disabled, pending deletion, gone: SSM relays KMS's
#   DisabledException, KMSInvalidStateException, NotFoundException); both are in the
#   operation's errors in botocore's service models (secretsmanager 2017-10-17, ssm 2014-11-06).
# Neither service answers a refusal with 403: its 403s (InvalidClientTokenId, Common Errors)
# refuse the credentials themselves, which no permission on the secret fixes.
_KMS_REFUSED = ("DecryptionFailure", "InvalidKeyId")
_MISSING = ("ResourceNotFoundException", "ParameterNotFound")
# At most this many older SSM versions are read to find the value the current one replaced,
# past versions that hold the current value again (a put-parameter --overwrite of the same value).
PARAMETER_VERSIONS_WALKED = 5


class SecretSource(NamedTuple):
    """Where one setting's value is kept in AWS."""

    setting: str
    service: Literal["secretsmanager", "ssm"]
    name: str  # the secret's ARN, or the parameter's name

    @property
    def action(self) -> str:
        """The IAM action reading it."""
        return (
            "secretsmanager:GetSecretValue"
            if self.service == "secretsmanager"
            else ("ssm:GetParameter")
        )

    def __str__(self) -> str:
        if self.service == "secretsmanager":
            return f"Secrets Manager secret {self.name}"
        return f"SSM parameter {self.name}"


class SecretUnavailableError(ServiceUnavailableError):
    """A value the function needs could not be read from AWS; `reason` says why (log only)."""

    slug = "secret-unavailable"

    def __init__(self, source: SecretSource, reason: str, retry_after: float) -> None:
        super().__init__(
            "a setting this function needs could not be read; the function's log says why",
            headers={"Retry-After": str(max(1, round(retry_after)))},
        )
        self.source = source
        self.reason = reason


def source_of(settings: Settings, setting: str) -> SecretSource | None:
    """Where `setting` is kept in AWS according to `settings`; None when it is not."""
    arn_variable, parameter_variable = REFERENCES[setting]
    arn: str | None = getattr(settings, arn_variable)
    if arn:
        return SecretSource(setting, "secretsmanager", arn)
    parameter: str | None = getattr(settings, parameter_variable)
    if parameter:
        return SecretSource(setting, "ssm", parameter)
    return None


class _Failures:
    """The last failure of each source, answered from memory for RETRY_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[SecretSource, tuple[float, str]] = {}

    def recent(self, source: SecretSource) -> SecretUnavailableError | None:
        with self._lock:
            until, reason = self._until.get(source, (0.0, ""))
        left = until - time.monotonic()
        return SecretUnavailableError(source, reason, left) if left > 0 else None

    def record(self, source: SecretSource, reason: str) -> SecretUnavailableError:
        with self._lock:
            self._until[source] = (time.monotonic() + RETRY_SECONDS, reason)
        logger.error("%s unavailable: %s", source.setting, reason)
        return SecretUnavailableError(source, reason, RETRY_SECONDS)

    def clear(self, source: SecretSource) -> None:
        with self._lock:
            self._until.pop(source, None)


_failures = _Failures()


def read(source: SecretSource) -> str | bytes:
    """The value at `source` (a binary secret as bytes), cached for Powertools' `max_age`."""
    failed = _failures.recent(source)
    if failed is not None:
        raise failed
    # Imported here, not at module level: it imports boto3 (~75 ms at cold start).
    from aws_lambda_powertools.utilities import parameters

    try:
        if source.service == "secretsmanager":
            value = parameters.get_secret(source.name)
        else:
            value = parameters.get_parameter(source.name, decrypt=True)
    except parameters.GetParameterError as error:
        raise _failures.record(source, explain(source, error)) from None
    assert isinstance(value, str | bytes)  # no transform asked for: what AWS stores
    _failures.clear(source)
    log_masking.remember(source.setting, value)  # never in a library's line or a traceback
    return value


class Versions(NamedTuple):
    """A value kept in AWS, the moment it was stored, and the value it replaced (if AWS has it)."""

    current: str | bytes
    changed_at: float  # when AWS stored `current` (epoch seconds)
    previous: str | bytes | None
    previous_unread: bool = False  # AWS refused the previous version: `previous` is unknown


def read_versions(source: SecretSource) -> Versions:
    """The current and the previous value at `source`, read now (no cache: the caller keeps one).

    Secrets Manager: GetSecretValue twice, the second with VersionStage AWSPREVIOUS ("To
    retrieve the previous version of a secret, use VersionStage and specify AWSPREVIOUS",
    GetSecretValue API reference); AWS moves that label to the replaced version whenever
    AWSCURRENT moves (PutSecretValue, UpdateSecretVersionStage, a rotation's finishSecret).
    SSM: GetParameter, then GetParameter `name:<version - 1>` (Parameter Store "increments the
    version number by one" at each change and keeps the last 100 versions, "Working with
    parameter versions"). Both are the action the role already has on the same resource:
    `source.action`. An SSM version holding the current value again (`put-parameter
    --overwrite` with an unchanged value: a description edit, a CloudFormation or Terraform
    update) is walked past, at most `PARAMETER_VERSIONS_WALKED` of them, to the value the
    current one replaced; `changed_at` is then the oldest such version's date, when the value
    really changed. Secrets Manager keeps only AWSPREVIOUS: a re-put of the same value makes it
    the current value, and there is no previous key (README, "Rotating the signing key").

    A previous value AWS does not have (a secret never changed, version 1) is None. Only a failed
    read of the current value is a `SecretUnavailableError`, like `read`: a failed read of the
    previous one (throttling, KMS, an IAM condition on the version) leaves `previous` None with
    `previous_unread` set, logged as a warning naming the permission or AWS's error code, so
    the current key keeps working.
    """
    failed = _failures.recent(source)
    if failed is not None:
        raise failed
    try:
        if source.service == "secretsmanager":
            versions = _secret_versions(source)
        else:
            versions = _parameter_versions(source)
    except Exception as error:  # as Powertools' `get`: any failure (AWS's, the network's) is one
        raise _failures.record(source, explain(source, error)) from None
    _failures.clear(source)
    log_masking.remember(source.setting, versions.current)
    log_masking.remember(source.setting, versions.previous)
    return versions


@functools.cache
def _client(service: str) -> Any:
    """One boto3 client per service and process (built on first use: boto3 costs ~75 ms)."""
    import boto3

    factory: Any = boto3.client  # typed per service name; ours is one of two
    return factory(service)


def _secret_versions(source: SecretSource) -> Versions:
    client = _client("secretsmanager")
    response = client.get_secret_value(SecretId=source.name)
    current, changed_at = _secret_value(response), response["CreatedDate"].timestamp()
    try:
        previous = client.get_secret_value(SecretId=source.name, VersionStage="AWSPREVIOUS")
    except client.exceptions.ResourceNotFoundException:
        return Versions(current, changed_at, None)
    except Exception as error:  # the current value is read: the previous one is optional
        return _previous_unread(source, error, current, changed_at)
    return Versions(current, changed_at, _secret_value(previous))


def _secret_value(response: Mapping[str, Any]) -> str | bytes:
    value = response.get("SecretString")
    return value if isinstance(value, str) else bytes(response["SecretBinary"])


def _parameter_versions(source: SecretSource) -> Versions:
    client = _client("ssm")
    parameter = client.get_parameter(Name=source.name, WithDecryption=True)["Parameter"]
    current, changed_at = str(parameter["Value"]), parameter["LastModifiedDate"].timestamp()
    version = int(parameter["Version"])
    for older in range(version - 1, max(version - 1 - PARAMETER_VERSIONS_WALKED, 0), -1):
        try:
            parameter = client.get_parameter(Name=f"{source.name}:{older}", WithDecryption=True)[
                "Parameter"
            ]
        except client.exceptions.ParameterVersionNotFound:
            break  # AWS keeps a parameter's last 100 versions
        except Exception as error:  # the current value is read: the previous one is optional
            return _previous_unread(source, error, current, changed_at)
        if parameter["Value"] != current:
            return Versions(current, changed_at, str(parameter["Value"]))
        changed_at = parameter["LastModifiedDate"].timestamp()  # the same value put again
    return Versions(current, changed_at, None)


def _previous_unread(
    source: SecretSource, error: BaseException, current: str | bytes, changed_at: float
) -> Versions:
    logger.warning(
        "%s: the previous version is not used (tokens of the key it replaced are refused "
        "until it is read): %s",
        source.setting,
        explain(source, error),
    )
    return Versions(current, changed_at, None, previous_unread=True)


def read_text(source: SecretSource) -> str:
    """The value at `source` as text (a URI)."""
    value = read(source)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _failures.record(source, f"{source} holds binary data, not text") from None
    return value


def explain(source: SecretSource, error: BaseException) -> str:
    """What went wrong reading `source`, for the operator: the permission and resource named,
    then whose words follow: AWS's answer, or botocore's when AWS could not be reached.
    """
    cause = _botocore_error(error)
    response = getattr(cause, "response", None)
    code = ""
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    said = f" ({_their_words(cause, answered=isinstance(response, dict))})"
    if code in _DENIED:
        kms = " (and kms:Decrypt on its key)" if "kms" in str(cause).lower() else ""
        return (
            f"the function's role may not read {source}: it needs {source.action}{kms} on "
            f"{_resource(source)}{said}"
        )
    if code in _KMS_REFUSED:
        return (
            f"{source} could not be decrypted: its KMS key must exist, be enabled and let the "
            f"function's role use kms:Decrypt{said}"
        )
    if code in _MISSING:
        return f"{source} does not exist in this account and region{said}"
    return f"{source} could not be read{said}"


_BOTOCORE = "botocore.exceptions"


def _botocore_error(error: BaseException) -> BaseException:
    """The error boto3 raised behind `error`.

    Powertools raises `GetParameterError(str(original))` inside the `except` clause that caught
    the botocore error (aws_lambda_powertools/utilities/parameters/base.py, `get`), so the
    original is its `__context__`, with AWS's error code. `read_versions` calls boto3 itself and
    gets the botocore error as it is, whose own `__context__` is not AWS's but urllib3's:
    botocore raises EndpointConnectionError(error=e) inside the `except` clause that caught
    urllib3's NewConnectionError (botocore/httpsession.py, `URLLib3Session.send`).
    """
    if _botocore_kinds(error):
        return error
    return error.__cause__ or error.__context__ or error


def _botocore_kinds(error: BaseException) -> set[str]:
    """The names of botocore's exception classes `error` is one of (its every error derives
    from BotoCoreError or ClientError there). Read by name: botocore is boto3's, which Lambda's
    runtime provides, and the layer declares boto3 only (pyproject.toml)."""
    return {kind.__name__ for kind in type(error).__mro__ if kind.__module__ == _BOTOCORE}


def _their_words(cause: BaseException, *, answered: bool) -> str:
    """`cause`'s text, after what it is: AWS's answer, or why AWS was not reached (botocore's
    ConnectionError and HTTPClientError: no connection, a timeout, a connection closed without
    an answer), or another error, by its name. botocore's text names the endpoint URL (a proxy's
    without its password), nothing of the request."""
    if answered:
        return f"AWS: {cause}"
    if _botocore_kinds(cause) & {"ConnectionError", "HTTPClientError"}:
        return f"could not reach AWS: {cause}{_system_reason(cause)}"
    return f"{type(cause).__name__}: {cause}"


def _system_reason(cause: BaseException) -> str:
    """The operating system's reason below a botocore error ("Connection refused", "Name or
    service not known"), after ": ", or "": botocore's text does not carry it (urllib3 raises
    its NewConnectionError from the socket's OSError, botocore its error from urllib3's)."""
    below = cause.__cause__ or cause.__context__
    for _ in range(4):  # botocore's, urllib3's, the socket's: a bound, whatever the chain
        if below is None:
            break
        if isinstance(below, OSError) and below.strerror:
            return f": {below.strerror}"
        below = below.__cause__ or below.__context__
    return ""


def _resource(source: SecretSource) -> str:
    if source.service == "secretsmanager":
        return source.name
    # The account and region are the function's own; AWS's message (appended) has the full ARN.
    # A name with a leading slash joins "parameter" directly (notes/aws-facts.md section 9).
    name = source.name if source.name.startswith("/") else "/" + source.name
    return f"arn:aws:ssm:<region>:<account>:parameter{name}"
