"""Settings: every environment variable the gateway reads, validated once per cold start.

`get_settings()` builds the one `Settings` of a process on first use and keeps it; tests that
need other values build their own `Settings(...)` and pass it where it is needed.

A plain pydantic model fed from `os.environ`, not pydantic-settings: each field is read from the
variable of the same name, values passed to `Settings(...)` win, and pydantic converts the
strings. That is all the gateway used of pydantic-settings, whose import (its sources for dotenv
files, secrets folders, cloud vaults and command lines, and asyncio) cost every function 10-17 ms
of cold start on the built artifact (`make bench coldstart`).
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from lucid import secret_store

LOCAL_STAGE = "local"
_PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "secret", "your-secret-key", "jwt-secret"}
)

# Read when the setting's own variable is unset: Powertools' name for the same thing.
FALLBACK_VARIABLES = {"SERVICE_NAME": "POWERTOOLS_SERVICE_NAME"}


class Settings(BaseModel):
    """The gateway's configuration, read from the environment (names are the variables)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # --- service ---------------------------------------------------------------------------
    STAGE: str = LOCAL_STAGE
    # The `service` of every log line and metric (the template's ServiceName parameter).
    SERVICE_NAME: str = "lucid-api-gateway"
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # The CloudWatch namespace of the functions' metrics (Powertools' variable).
    POWERTOOLS_METRICS_NAMESPACE: str = Field(default="Lucid", min_length=1, max_length=255)

    # --- auth ------------------------------------------------------------------------------
    # Public base URL of the auth endpoints; its host is the sign-in message's domain.
    AUTH_SERVICE_URL: str = "http://127.0.0.1:8080"
    JWT_SECRET_KEY: SecretStr | None = None
    JWT_PREVIOUS_SECRET_KEY: SecretStr | None = None
    JWT_KEY_ID: str = "k1"
    JWT_PREVIOUS_KEY_ID: str | None = None
    # Where the key is kept in AWS (Secrets Manager ARN / SSM parameter): lucid.secret_store.
    JWT_SECRET_ARN: str | None = None
    JWT_SECRET_PARAM: str | None = None
    JWT_ALGORITHM: Literal["HS256", "HS384", "HS512", "RS256", "ES256"] = "HS256"
    JWT_PRIVATE_KEY: SecretStr | None = None
    JWT_PUBLIC_KEY: str | None = None
    # RS256/ES256 rotation: the previous public key (PEM), accepted for JWT_PREVIOUS_KEY_ID.
    JWT_PREVIOUS_PUBLIC_KEY: str | None = None
    JWT_ISSUER: str = "lucid-api-gateway"
    JWT_AUDIENCE: str = "lucid"
    JWT_LEEWAY_SECONDS: int = Field(default=10, ge=0, le=30)
    TOKEN_EXPIRE_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=14, ge=1, le=90)
    SIGNIN_CHALLENGE_TTL_SECONDS: int = Field(default=300, ge=30, le=3600)
    TRON_CHAIN_ID: str = "mainnet"
    ADMIN_ADDRESSES: list[str] = Field(default_factory=list)

    # --- state -----------------------------------------------------------------------------
    # Each URI, or where it is kept in AWS (read by `required_uri`, see lucid.secret_store).
    MONGODB_URI: SecretStr | None = None
    MONGODB_URI_SECRET_ARN: str | None = None
    MONGODB_URI_PARAM: str | None = None
    MONGODB_DATABASE: str = "lucid"
    MONGODB_TIMEOUT_MS: int = Field(default=2000, ge=50, le=30000)
    REDIS_URI: SecretStr | None = None
    REDIS_URI_SECRET_ARN: str | None = None
    REDIS_URI_PARAM: str | None = None
    # Every Redis socket operation is bounded by this (50 ms in production: a slow Redis degrades
    # to the fallbacks instead of holding requests); raise it where the machine is overloaded.
    REDIS_TIMEOUT_MS: int = Field(default=50, ge=1, le=1000)
    REDIS_MAX_CONNECTIONS: int = Field(default=64, ge=1)

    # --- backends --------------------------------------------------------------------------
    BLOCKCHAIN_SERVICE_URL: str | None = None
    SESSION_SERVICE_URL: str | None = None
    NODE_SERVICE_URL: str | None = None
    # An SSM path whose parameters blockchain / session / node hold the backends' URLs (they
    # win over the *_SERVICE_URL settings), re-read every BACKEND_DISCOVERY_MAX_AGE_SECONDS.
    BACKEND_PARAMETER_PATH: str | None = None
    BACKEND_DISCOVERY_MAX_AGE_SECONDS: int = Field(default=60, ge=1, le=3600)
    PROXY_CONNECT_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0, le=10)
    PROXY_READ_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=28)
    PROXY_RETRIES: int = Field(default=2, ge=0, le=5)
    BREAKER_WINDOW_SECONDS: int = Field(default=30, ge=1)
    BREAKER_MIN_CALLS: int = Field(default=5, ge=1)
    BREAKER_FAILURE_RATE: float = Field(default=0.5, gt=0, le=1)
    BREAKER_OPEN_SECONDS: int = Field(default=15, ge=1)
    BREAKER_HALF_OPEN_CALLS: int = Field(default=2, ge=1)
    # How stale an instance's cached copy of the shared breaker state may get (0: read every call).
    BREAKER_SYNC_MS: int = Field(default=500, ge=0, le=10000)

    # --- rate limits (requests per window) -------------------------------------------------
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_PUBLIC: int = Field(default=100, ge=1)
    RATE_LIMIT_AUTHENTICATED: int = Field(default=1000, ge=1)
    RATE_LIMIT_ADMIN: int = Field(default=10000, ge=1)
    RATE_LIMIT_WINDOW_SECONDS: int = Field(default=60, ge=1, le=3600)
    RATE_LIMIT_SIGNIN_PER_IP: int = Field(default=10, ge=1)
    RATE_LIMIT_SIGNIN_PER_ADDRESS: int = Field(default=10, ge=1)
    RATE_LIMIT_FAIL_MODE: Literal["open", "closed"] = "open"
    # Slots one instance may reserve for a busy caller (lucid.ratelimit.lease); 0: none.
    RATE_LIMIT_LEASE_MAX: int = Field(default=32, ge=0, le=1000)

    # --- users & sessions ------------------------------------------------------------------
    # How long a POST's Idempotency-Key replays its first response.
    IDEMPOTENCY_TTL_SECONDS: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        # Template parameters default to "" for optional values; "" means "not configured".
        return None if value == "" else value

    @field_validator("ADMIN_ADDRESSES", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def __init__(self, **values: Any) -> None:
        """The environment's values, overridden by `values`."""
        super().__init__(**{**_environment(), **values})

    @property
    def is_local(self) -> bool:
        """True on the `local` stage, where a random JWT key is allowed."""
        return self.STAGE == LOCAL_STAGE

    def required_uri(self, name: Literal["MONGODB_URI", "REDIS_URI"]) -> str:
        """The server URI of setting `name`, read from AWS when a reference to it is set
        (`lucid.secret_store`: SecretUnavailableError when it cannot be read); a RuntimeError
        saying how to provide it if it is not configured at all.

        The layer starts no server of its own (what does so locally is not shipped to Lambda).
        """
        source = secret_store.source_of(self, name)
        if source is not None:
            return secret_store.read_text(source)
        value: SecretStr | None = getattr(self, name)
        if value is not None:
            return value.get_secret_value()
        if self.is_local:
            raise RuntimeError(
                f"{name} is unset: run the functions through the local edge (`make run` or "
                f"`lucid serve`), which starts a local server and sets {name} for them, "
                f"or set {name} to your server"
            )
        raise RuntimeError(
            f"{name} is required on stage {self.STAGE!r}: set {name}_SECRET_ARN or {name}_PARAM "
            f"(where it is kept in Secrets Manager / SSM)"
        )

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Settings:
        secret = self.JWT_SECRET_KEY.get_secret_value() if self.JWT_SECRET_KEY else None
        if secret is not None and secret.lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("JWT_SECRET_KEY is a well-known placeholder; generate a real key")
        if self.is_local:
            return self
        # A missing key is refused by the functions that sign or verify tokens (lucid.auth.keys,
        # at their cold start): the others are not given one (infra/needs.yaml).
        if self.JWT_ALGORITHM.startswith("HS") and secret is not None and len(secret.encode()) < 32:
            raise ValueError("JWT_SECRET_KEY must be at least 32 bytes outside the local stage")
        return self


def _environment() -> dict[str, str]:
    """The variables named like a setting (case-sensitive), with their fallbacks."""
    values = {name: os.environ[name] for name in Settings.model_fields if name in os.environ}
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
    settings = Settings()
    referenced = settings.JWT_SECRET_ARN or settings.JWT_SECRET_PARAM
    if settings.is_local and settings.JWT_SECRET_KEY is None and not referenced:
        logging.getLogger("lucid").warning(
            "JWT_SECRET_KEY is unset: using a random key for this process only (local stage)"
        )
        settings = settings.model_copy(update={"JWT_SECRET_KEY": SecretStr(ephemeral_secret())})
    return settings
