"""JWT signing and verification keys: where they come from, how they rotate.

Signing material, first match wins:

1. JWT_SECRET_ARN   - an AWS Secrets Manager secret (string or binary),
2. JWT_SECRET_PARAM - an SSM Parameter Store parameter (SecureString, decrypted),
3. JWT_SECRET_KEY (HS*) or JWT_PRIVATE_KEY (RS256/ES256, PEM) from the environment.

For HS* the material is the shared secret; for RS256/ES256 it is the private key PEM, and
JWT_PUBLIC_KEY alone gives a verify-only key set (what the authorizer needs). AWS values are read
by `lucid.secret_store` (Powertools Parameters) and cached for `max_age` seconds, so a warm function
picks up a rotated secret without a redeploy; the parsed key set is rebuilt only when the material
changes. A key AWS will not hand over (permission, missing secret) raises `SecretUnavailableError`
per call, logged with the permission the role lacks, rather than stopping the function at start.

Rotation: tokens carry the `kid` of the key that signed them (JWT_KEY_ID); the previous key
(JWT_PREVIOUS_KEY_ID with JWT_PREVIOUS_SECRET_KEY or JWT_PREVIOUS_PUBLIC_KEY) still verifies
during the rotation window and never signs.

RS256/ES256 keys are read by `lucid.auth.pem`, imported only for those algorithms: it needs the
`cryptography` package, which the default layer leaves out (README, "Signing keys").
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lucid import secret_store
from lucid.config import Settings, get_settings

MIN_HMAC_KEY_BYTES = 32
DEFAULT_MAX_AGE_SECONDS = 300


class KeyConfigurationError(RuntimeError):
    """The configured JWT keys are missing, too weak or unreadable: the function must not start."""


@dataclass(frozen=True, slots=True)
class JwtKey:
    """One key id and what it signs with (None when verify-only) and verifies with."""

    kid: str
    signing: Any
    verifying: Any


@dataclass(frozen=True, slots=True)
class KeySet:
    """The algorithm, the current key and, during a rotation window, the previous one."""

    algorithm: str
    current: JwtKey
    previous: JwtKey | None = None

    def for_kid(self, kid: str) -> JwtKey | None:
        """The key a token with header `kid` must verify under, if we know that id."""
        for key in (self.current, self.previous):
            if key is not None and key.kid == kid:
                return key
        return None


class KeyRing:
    """Builds the `KeySet` for `settings`, re-reading AWS-held material at most every max_age."""

    def __init__(self, settings: Settings, max_age: int = DEFAULT_MAX_AGE_SECONDS) -> None:
        self._settings = settings
        self._max_age = max_age
        self._lock = threading.Lock()
        self._built: tuple[bytes | None, KeySet] | None = None

    def keys(self) -> KeySet:
        """The current key set (raises `KeyConfigurationError` if the keys are unusable)."""
        material = self._signing_material()
        with self._lock:
            if self._built is None or self._built[0] != material:
                self._built = (material, _build_key_set(self._settings, material))
            return self._built[1]

    def _signing_material(self) -> bytes | None:
        settings = self._settings
        source = secret_store.source_of(settings, "JWT_SECRET_KEY")
        if source is not None:
            value = secret_store.read(source, max_age=self._max_age)
            return value.encode() if isinstance(value, str) else value
        env = settings.JWT_SECRET_KEY if _is_hmac(settings) else settings.JWT_PRIVATE_KEY
        return env.get_secret_value().encode() if env else None


def _is_hmac(settings: Settings) -> bool:
    return settings.JWT_ALGORITHM.startswith("HS")


def _build_key_set(settings: Settings, material: bytes | None) -> KeySet:
    previous_kid = settings.JWT_PREVIOUS_KEY_ID
    if previous_kid is not None and previous_kid == settings.JWT_KEY_ID:
        raise KeyConfigurationError("JWT_PREVIOUS_KEY_ID must differ from JWT_KEY_ID")
    if _is_hmac(settings):
        current = _hmac_key(settings, settings.JWT_KEY_ID, material)
        old = settings.JWT_PREVIOUS_SECRET_KEY
        old_material = old.get_secret_value().encode() if old else None
    else:
        pem = _pem_support(settings.JWT_ALGORITHM)
        current = pem.asymmetric_key(settings, material)
        old_pem = settings.JWT_PREVIOUS_PUBLIC_KEY
        old_material = old_pem.encode() if old_pem else None
    if (previous_kid is None) != (old_material is None):
        raise KeyConfigurationError("a previous JWT key needs both its key and JWT_PREVIOUS_KEY_ID")
    previous = None
    if previous_kid is not None and old_material is not None:
        if _is_hmac(settings):
            previous = _hmac_key(settings, previous_kid, old_material)
        else:
            public = _pem_support(settings.JWT_ALGORITHM).public_key(
                settings.JWT_ALGORITHM, old_material
            )
            previous = JwtKey(previous_kid, None, public)
    return KeySet(settings.JWT_ALGORITHM, current, previous)


def _pem_support(algorithm: str) -> ModuleType:
    """`lucid.auth.pem`; a refusal naming the missing package when cryptography is absent."""
    try:
        from lucid.auth import pem
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != "cryptography":
            raise
        raise KeyConfigurationError(
            f"{algorithm} keys need the `cryptography` package, which the default layer leaves "
            'out: add it to the layer (README, "Signing keys") or use an HS256 key'
        ) from error
    return pem


def _hmac_key(settings: Settings, kid: str, material: bytes | None) -> JwtKey:
    if not material:
        raise KeyConfigurationError(
            "no JWT signing key is configured: set JWT_SECRET_ARN or JWT_SECRET_PARAM "
            "(JWT_SECRET_KEY on the local stage)"
        )
    if len(material) < MIN_HMAC_KEY_BYTES and not settings.is_local:
        raise KeyConfigurationError(
            f"the {settings.JWT_ALGORITHM} key must be at least {MIN_HMAC_KEY_BYTES} bytes "
            f"outside the local stage"
        )
    return JwtKey(kid, material, material)


def check_keys_at_cold_start() -> None:
    """Refuse to start with unusable keys (too short, bad PEM, ...); a key AWS does not hand
    over yet is only logged (by `lucid.secret_store`) and tried again by the requests: a
    function failing its start-up would pay a cold start per request and still not heal."""
    with contextlib.suppress(secret_store.SecretUnavailableError):
        get_key_ring().keys()


@functools.cache
def get_key_ring() -> KeyRing:
    """The process's key ring for `get_settings()` (built on first use, then shared)."""
    return KeyRing(get_settings())
