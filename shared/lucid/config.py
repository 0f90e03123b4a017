"""Settings: every environment variable the gateway reads, validated once per cold start.

`get_settings()` builds the one `Settings` of a process on first use and keeps it; tests that
need other values build their own `Settings(...)` and pass it where it is needed.

A frozen dataclass fed from `os.environ`, without pydantic: each field is read from the
variable of the same name, values passed to `Settings(...)` win, and the field's parser (declared
with `setting(default, parser)`; the parsers come first below) converts and bounds the value.
Bad values refuse to build the settings with one `SettingsError` naming every bad variable and
what it must be. The authorizer imports no pydantic at all because of this (and of
`lucid.auth.tokens`): `import pydantic` and this class as a pydantic model were 56 ms of its cold
start's CPU, a third of it (`make bench coldstart`); FastAPI functions import pydantic anyway
and save only the model's few ms.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import math
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from lucid import secret_store
from lucid.log_masking import remember

__all__ = ["LOCAL_STAGE", "Secret", "Settings", "SettingsError", "UriNotSetError", "get_settings"]

# --- how each setting is read --------------------------------------------------------------
# A parser turns an environment string (or a value passed to `Settings(...)`) into the field's
# type, or raises a ValueError saying what the value must be. The conversions are those the
# settings had as a pydantic model (lax mode): integers from "42", numbers from "0.5", booleans
# from true/false, 1/0, yes/no, on/off, t/f, y/n (any case), an exact choice for a Literal, a
# comma-separated list for a list. An empty string means "not configured" (template parameters
# default to ""): None for an optional setting, an error for one that needs a value. A secret's
# value is never part of a message or a repr.

Parser = Callable[[object], object]
_PARSER = "lucid.parser"
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_SHOWN_CHARACTERS = 60


class SettingsError(ValueError):
    """Settings that must not be used: every refused value, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(
            f"{count} invalid setting{'s' if count > 1 else ''}: " + "; ".join(self.problems)
        )


class UriNotSetError(RuntimeError):
    """A server URI the function needs is not configured at all (`Settings.required_uri`)."""


class Secret:
    """A value kept out of reprs, logs and error messages; `get_secret_value()` reads it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def setting(default: object, parser: Parser) -> Any:
    """A field of Settings: `default` when unset (a tuple default is a fresh list each time),
    `parser` for any value given."""
    if isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: list(default), metadata={_PARSER: parser})
    return dataclasses.field(default=default, metadata={_PARSER: parser})


def default_of(field: dataclasses.Field[Any]) -> object:
    """The value of `field` when nothing sets it."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def parse_setting(field: dataclasses.Field[Any], value: object) -> object:
    """`value` converted for `field`; ValueError naming what is expected if it cannot be."""
    parser: Parser = field.metadata[_PARSER]
    if value == "" and parser is not _comma_list:
        value = None
    if value is None:
        if field.default is None:
            return None
        raise ValueError("is empty: give it a value or leave the variable unset")
    return parser(value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 3] + "..."


def text(*, max_length: int | None = None) -> Parser:
    """A string of at most `max_length` characters (an empty one never reaches a parser: it is
    "not configured", `parse_setting`)."""

    def parse(value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"must be a string (got {_shown(value)})")
        if max_length is not None and len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters long")
        return value

    return parse


def secret() -> Parser:
    """A string kept as a `Secret` (never shown, not even in the error for a wrong type)."""

    def parse(value: object) -> object:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return Secret(value)

    return parse


def choice(*allowed: str) -> Parser:
    """One of `allowed`, exactly (case-sensitive)."""

    def parse(value: object) -> object:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)} (got {_shown(value)})")
        return value

    return parse


def _bounded(value: float, ge: float | None, gt: float | None, le: float | None) -> None:
    if ge is not None and value < ge:
        raise ValueError(f"must be at least {ge} (got {value})")
    if gt is not None and value <= gt:
        raise ValueError(f"must be greater than {gt} (got {value})")
    if le is not None and value > le:
        raise ValueError(f"must be at most {le} (got {value})")


def integer(*, ge: int | None = None, le: int | None = None) -> Parser:
    """A whole number within [ge, le]: an int, a float without a fraction, or its digits."""

    def parse(value: object) -> object:
        number: int
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number (got {_shown(value)})")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            raise ValueError(f"must be a whole number (got {_shown(value)})")
        _bounded(number, ge, None, le)
        return number

    return parse


def number(*, gt: float | None = None, le: float | None = None) -> Parser:
    """A finite number within (gt, le]: an int, a float or its decimal text."""

    def parse(value: object) -> object:
        result: float
        if isinstance(value, bool):
            raise ValueError(f"must be a number (got {_shown(value)})")
        if isinstance(value, int | float):
            result = float(value)
        else:
            try:
                result = float(value.strip()) if isinstance(value, str) else math.nan
            except ValueError:
                result = math.nan
        if not math.isfinite(result):
            raise ValueError(f"must be a finite number (got {_shown(value)})")
        _bounded(result, None, gt, le)
        return result

    return parse


def boolean() -> Parser:
    """true/false, 1/0, yes/no, on/off, t/f or y/n, in any case (or a bool)."""

    def parse(value: object) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        word = value.strip().lower() if isinstance(value, str) else None
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(f"must be true or false (got {_shown(value)})")

    return parse


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError(f"must be a comma-separated list (got {_shown(value)})")


def comma_list() -> Parser:
    """A list of strings, from "a, b,c" (blanks dropped: "" is the empty list) or a list."""
    return _comma_list


# --- the settings --------------------------------------------------------------------------

LOCAL_STAGE = "local"
# The most clock skew past a token's exp/nbf any check may allow: JWT_LEEWAY_SECONDS's bound, and
# how long past an access token's lifetime a revocation is kept (lucid.auth.revocation).
MAX_JWT_LEEWAY_SECONDS = 30
# What a stage's token `iss` / `aud` start with when JWT_ISSUER / JWT_AUDIENCE are unset.
ISSUER_BASE = "lucid-api-gateway"
AUDIENCE_BASE = "lucid"
# The sign-in URL of the local stage when nobody sets one (`lucid serve` sets the address it
# serves; tests and `sam local` the one they use).
LOCAL_AUTH_SERVICE_URL = "http://127.0.0.1:8080"
_PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "secret", "your-secret-key", "jwt-secret"}
)

# Read when the setting's own variable is unset: Powertools' name for the same thing.
FALLBACK_VARIABLES = {"SERVICE_NAME": "POWERTOOLS_SERVICE_NAME"}
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "ES256"]
# The shortest HMAC key each HS* algorithm takes outside the local stage: its hash's output size.
# RFC 7518 section 3.2: "A key of the same size as the hash output (for instance, 256 bits for
# "HS256") or larger MUST be used with this algorithm."
HMAC_KEY_MIN_BYTES: dict[str, int] = {"HS256": 32, "HS384": 48, "HS512": 64}


# repr=False, eq=False: the dataclass machinery would compile a __repr__, an __eq__ and a __hash__
# over the 60 fields at every cold start (~0.7 ms of CPU of each function's start, over half the
# class's creation); the methods below do what those would, written once.
@dataclass(frozen=True, init=False, repr=False, eq=False)
class Settings:
    """The gateway's configuration, read from the environment (names are the variables)."""

    # --- service ---------------------------------------------------------------------------
    STAGE: str = setting(LOCAL_STAGE, text())
    # The `service` of every log line and metric (the template's ServiceName parameter).
    SERVICE_NAME: str = setting("lucid-api-gateway", text())
    LOG_LEVEL: LogLevel = setting("INFO", choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    # The CloudWatch namespace of the functions' metrics (Powertools' variable).
    POWERTOOLS_METRICS_NAMESPACE: str = setting("Lucid", text(max_length=255))

    # --- auth ------------------------------------------------------------------------------
    # Public base URL of the auth endpoints; its host is the sign-in message's domain. Unset on
    # a deployed stage: the API's own URL, the domain and stage each request came through
    # (`sign_in_url`); set it for a custom domain. Outside `local` it must be https:// and not
    # a loopback host (a message for 127.0.0.1 binds a signature to no site at all).
    AUTH_SERVICE_URL: str | None = setting(None, text())
    JWT_SECRET_KEY: Secret | None = setting(None, secret())
    JWT_PREVIOUS_SECRET_KEY: Secret | None = setting(None, secret())
    JWT_KEY_ID: str = setting("k1", text())
    JWT_PREVIOUS_KEY_ID: str | None = setting(None, text())
    # Where the key is kept in AWS (Secrets Manager ARN / SSM parameter): lucid.secret_store.
    JWT_SECRET_ARN: str | None = setting(None, text())
    JWT_SECRET_PARAM: str | None = setting(None, text())
    JWT_ALGORITHM: JwtAlgorithm = setting(
        "HS256", choice("HS256", "HS384", "HS512", "RS256", "ES256")
    )
    JWT_PRIVATE_KEY: Secret | None = setting(None, secret())
    JWT_PUBLIC_KEY: str | None = setting(None, text())
    # RS256/ES256 verify-only functions (the authorizer): where the public key is kept in AWS,
    # read when no private-key reference is set (lucid.auth.keys).
    JWT_PUBLIC_KEY_ARN: str | None = setting(None, text())
    JWT_PUBLIC_KEY_PARAM: str | None = setting(None, text())
    # RS256/ES256 rotation: the previous public key (PEM), accepted for JWT_PREVIOUS_KEY_ID.
    JWT_PREVIOUS_PUBLIC_KEY: str | None = setting(None, text())
    # Access tokens' `iss` and `aud`. Unset (the template sets neither), they name the stage:
    # `lucid-api-gateway/<STAGE>` and `lucid/<STAGE>`, so a token minted on one stage is refused
    # on every other even where the stages share a signing key.
    JWT_ISSUER: str = setting(None, text())
    JWT_AUDIENCE: str = setting(None, text())
    # Clock skew allowed past a token's exp/nbf, by the authorizer and every function alike; at
    # most MAX_JWT_LEEWAY_SECONDS, the margin revocations are kept for. Every Settings parses
    # each value through its field (`__init__`, `dataclasses.replace` too): nothing else bounds it.
    JWT_LEEWAY_SECONDS: int = setting(10, integer(ge=0, le=MAX_JWT_LEEWAY_SECONDS))
    TOKEN_EXPIRE_MINUTES: int = setting(15, integer(ge=1, le=24 * 60))
    REFRESH_TOKEN_EXPIRE_DAYS: int = setting(14, integer(ge=1, le=90))
    SIGNIN_CHALLENGE_TTL_SECONDS: int = setting(300, integer(ge=30, le=3600))
    TRON_CHAIN_ID: str = setting("mainnet", text())
    ADMIN_ADDRESSES: list[str] = setting((), comma_list())

    # --- state -----------------------------------------------------------------------------
    # Each URI, or where it is kept in AWS (read by `required_uri`, see lucid.secret_store).
    MONGODB_URI: Secret | None = setting(None, secret())
    MONGODB_URI_SECRET_ARN: str | None = setting(None, text())
    MONGODB_URI_PARAM: str | None = setting(None, text())
    MONGODB_DATABASE: str = setting("lucid", text())
    MONGODB_TIMEOUT_MS: int = setting(2000, integer(ge=50, le=30000))
    # Reads by id on the signed-in routes as one OP_MSG on a pooled connection (lucid.store.
    # fast_reads); false: every read through pymongo's find_one.
    MONGODB_FAST_READS: bool = setting(True, boolean())
    # Stages may share a Redis database: every key starts with `lucid:<STAGE>:` (lucid.store.keys).
    REDIS_URI: Secret | None = setting(None, secret())
    REDIS_URI_SECRET_ARN: str | None = setting(None, text())
    REDIS_URI_PARAM: str | None = setting(None, text())
    # Every Redis socket operation is bounded by this (50 ms in production: a slow Redis degrades
    # to the fallbacks instead of holding requests); raise it where the machine is overloaded.
    REDIS_TIMEOUT_MS: int = setting(50, integer(ge=1, le=1000))
    # Opening a connection: the TCP connect and, for rediss://, the TLS handshake (not the
    # per-command REDIS_TIMEOUT_MS: lucid.store.resp). 100 ms is AWS's own example for ElastiCache
    # (BestPractices.Clients.Redis.ClientTimeout: socket_connect_timeout=0.1); paid once per
    # connection, which a function keeps for its life (lucid.store.redis_client).
    REDIS_CONNECT_TIMEOUT_MS: int = setting(100, integer(ge=1, le=5000))
    REDIS_MAX_CONNECTIONS: int = setting(64, integer(ge=1))

    # --- backends --------------------------------------------------------------------------
    BLOCKCHAIN_SERVICE_URL: str | None = setting(None, text())
    SESSION_SERVICE_URL: str | None = setting(None, text())
    NODE_SERVICE_URL: str | None = setting(None, text())
    # An SSM path whose parameters blockchain / session / node hold the backends' URLs (they
    # win over the *_SERVICE_URL settings), re-read every BACKEND_DISCOVERY_MAX_AGE_SECONDS.
    BACKEND_PARAMETER_PATH: str | None = setting(None, text())
    BACKEND_DISCOVERY_MAX_AGE_SECONDS: int = setting(60, integer(ge=1, le=3600))
    PROXY_CONNECT_TIMEOUT_SECONDS: float = setting(2.0, number(gt=0, le=10))
    PROXY_READ_TIMEOUT_SECONDS: float = setting(10.0, number(gt=0, le=28))
    PROXY_RETRIES: int = setting(2, integer(ge=0, le=5))
    BREAKER_WINDOW_SECONDS: int = setting(30, integer(ge=1))
    BREAKER_MIN_CALLS: int = setting(5, integer(ge=1))
    BREAKER_FAILURE_RATE: float = setting(0.5, number(gt=0, le=1))
    BREAKER_OPEN_SECONDS: int = setting(15, integer(ge=1))
    BREAKER_HALF_OPEN_CALLS: int = setting(2, integer(ge=1))
    # How stale an instance's cached copy of the shared breaker state may get (0: read every call).
    BREAKER_SYNC_MS: int = setting(500, integer(ge=0, le=10000))

    # --- rate limits (requests per window) -------------------------------------------------
    RATE_LIMIT_ENABLED: bool = setting(True, boolean())
    RATE_LIMIT_PUBLIC: int = setting(100, integer(ge=1))
    RATE_LIMIT_AUTHENTICATED: int = setting(1000, integer(ge=1))
    RATE_LIMIT_ADMIN: int = setting(10000, integer(ge=1))
    RATE_LIMIT_WINDOW_SECONDS: int = setting(60, integer(ge=1, le=3600))
    RATE_LIMIT_SIGNIN_PER_IP: int = setting(10, integer(ge=1))
    RATE_LIMIT_SIGNIN_PER_ADDRESS: int = setting(10, integer(ge=1))
    RATE_LIMIT_FAIL_MODE: Literal["open", "closed"] = setting("open", choice("open", "closed"))
    # Slots one instance may reserve for a busy caller (lucid.ratelimit.lease); 0: none.
    RATE_LIMIT_LEASE_MAX: int = setting(32, integer(ge=0, le=1000))

    # --- users & sessions ------------------------------------------------------------------
    # How long a POST's Idempotency-Key replays its first response.
    IDEMPOTENCY_TTL_SECONDS: int = setting(24 * 3600, integer(ge=60, le=7 * 24 * 3600))

    def __init__(self, **values: Any) -> None:
        """The environment's values, overridden by `values` (keyword names are the settings;
        an unknown one is a TypeError). A `SettingsError` lists every value that is refused."""
        fields = {field.name: field for field in dataclasses.fields(self)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise TypeError(f"Settings() got unknown settings: {', '.join(unknown)}")
        given = {**_environment(fields), **values}
        problems = []
        for name, field in fields.items():
            try:
                parsed = parse_setting(field, given[name]) if name in given else default_of(field)
            except ValueError as error:
                problems.append(f"{name}: {error}")
                continue
            object.__setattr__(self, name, parsed)
        if problems:
            raise SettingsError(problems)
        for name, default in (("JWT_ISSUER", ISSUER_BASE), ("JWT_AUDIENCE", AUDIENCE_BASE)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, f"{default}/{self.STAGE}")
        self._refuse_unsafe_secrets()
        self._refuse_unbound_sign_in_url()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)

    def __repr__(self) -> str:
        """As the dataclass's: every field's repr (a `Secret` shows none of its value)."""
        shown = (f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)
        return f"{type(self).__qualname__}({', '.join(shown)})"

    def __eq__(self, other: object) -> bool:
        """As the dataclass's: same class, equal fields."""
        if not isinstance(other, Settings) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        """As a frozen dataclass's: the fields' (a TypeError while ADMIN_ADDRESSES is a list)."""
        return hash(self._values())

    @property
    def is_local(self) -> bool:
        """True on the `local` stage, where a random JWT key is allowed."""
        return self.STAGE == LOCAL_STAGE

    def sign_in_url(self, api_url: str | None) -> str:
        """The URL sign-in messages name (their `uri`; its authority is their `domain`):
        AUTH_SERVICE_URL when set, else `api_url` (the API's own URL as the request reached it)
        on a deployed stage and LOCAL_AUTH_SERVICE_URL on `local`. A RuntimeError when a
        deployed stage has neither (an invocation that did not come through API Gateway)."""
        if self.AUTH_SERVICE_URL is not None:
            return self.AUTH_SERVICE_URL
        if self.is_local:
            return LOCAL_AUTH_SERVICE_URL
        if api_url is None:
            raise RuntimeError(
                "AUTH_SERVICE_URL is unset and the request names no API domain: set "
                "AUTH_SERVICE_URL (the template's AuthServiceUrl) to the gateway's public URL"
            )
        return api_url

    def required_uri(self, name: Literal["MONGODB_URI", "REDIS_URI"]) -> str:
        """The server URI of setting `name`, read from AWS when a reference to it is set
        (`lucid.secret_store`: SecretUnavailableError when it cannot be read); an UriNotSetError
        saying how to provide it if it is not configured at all.

        The layer starts no server of its own (what does so locally is not shipped to Lambda).
        """
        source = secret_store.source_of(self, name)
        if source is not None:
            return secret_store.read_text(source)
        value: Secret | None = getattr(self, name)
        if value is not None:
            return value.get_secret_value()
        if self.is_local:
            raise UriNotSetError(
                f"{name} is unset: run the functions through the local edge (`make run` or "
                f"`lucid serve`), which starts a local server and sets {name} for them, "
                f"or set {name} to your server"
            )
        raise UriNotSetError(
            f"{name} is required on stage {self.STAGE!r}: set {name}_SECRET_ARN or {name}_PARAM "
            f"(where it is kept in Secrets Manager / SSM)"
        )

    def _refuse_unbound_sign_in_url(self) -> None:
        url = self.AUTH_SERVICE_URL
        if self.is_local or url is None:
            return
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            problem = "must be an https:// URL"
        elif is_loopback_host(parts.hostname):
            problem = "must not name a loopback or localhost host"
        else:
            return
        raise SettingsError(
            [
                f"AUTH_SERVICE_URL {problem} outside the local stage (got {_shown(url)}): it is "
                "the domain sign-in messages are bound to; leave it unset for the API's own URL"
            ]
        )

    def _refuse_unsafe_secrets(self) -> None:
        secret = self.JWT_SECRET_KEY.get_secret_value() if self.JWT_SECRET_KEY else None
        if secret is not None and secret.lower() in _PLACEHOLDER_SECRETS:
            raise SettingsError(["JWT_SECRET_KEY is a well-known placeholder; generate a real key"])
        if self.is_local:
            return
        # A missing key is refused by the functions that sign or verify tokens (lucid.auth.keys,
        # at their cold start): the others are not given one (infra/needs.yaml).
        least = HMAC_KEY_MIN_BYTES.get(self.JWT_ALGORITHM)
        if least is not None and secret is not None and len(secret.encode()) < least:
            raise SettingsError(
                [
                    f"JWT_SECRET_KEY must be at least {least} bytes for {self.JWT_ALGORITHM} "
                    "outside the local stage"
                ]
            )


def is_loopback_host(host: str) -> bool:
    """True for localhost (RFC 6761: and its subdomains), 127.0.0.0/8, ::1 and 0.0.0.0."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _environment(fields: dict[str, dataclasses.Field[Any]]) -> dict[str, str]:
    """The variables named like a setting (case-sensitive), with their fallbacks."""
    values = {name: os.environ[name] for name in fields if name in os.environ}
    for name, fallback in FALLBACK_VARIABLES.items():
        if name not in values and fallback in os.environ:
            values[name] = os.environ[fallback]
    return values


def ephemeral_secret() -> str:
    """A random HS256 key for one local run; tokens die with the process that made it."""
    return secrets.token_urlsafe(48)


@functools.cache
def get_settings() -> Settings:
    """The process's settings, built on first use (once per cold start)."""
    return Settings()


def lacks_local_signing_key(settings: Settings) -> bool:
    """True on the local stage when no JWT key is configured, nor a reference to one."""
    referenced = settings.JWT_SECRET_ARN or settings.JWT_SECRET_PARAM
    return settings.is_local and settings.JWT_SECRET_KEY is None and not referenced


def with_local_signing_key(settings: Settings) -> Settings:
    """`settings` as what signs and verifies tokens needs them (`lucid.auth.keys`): on the local
    stage with no JWT key and no reference to one, a random key for this process, said once in
    a WARNING line; otherwise `settings` as they are (another stage's functions refuse a missing
    key). Asked only where a token is signed or verified, so what never does (`lucid db init`,
    `lucid openapi`, the proxy) neither makes up a key nor warns about one."""
    if not lacks_local_signing_key(settings):
        return settings
    logging.getLogger("lucid").warning(
        "JWT_SECRET_KEY is unset: using a random key for this process only (local stage)"
    )
    key = ephemeral_secret()
    remember("JWT_SECRET_KEY", key)  # masked in every line, as a configured key is
    return dataclasses.replace(settings, JWT_SECRET_KEY=Secret(key))
