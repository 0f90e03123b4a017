"""JWT signing and verification keys: where they come from, how they rotate.

Signing material, first match wins:

1. JWT_SECRET_ARN   - an AWS Secrets Manager secret (string or binary),
2. JWT_SECRET_PARAM - an SSM Parameter Store parameter (SecureString, decrypted),
3. JWT_SECRET_KEY (HS*) or JWT_PRIVATE_KEY (RS256/ES256, PEM) from the environment.

For HS* the material is the shared secret; for RS256/ES256 it is the private key PEM, and a
public key alone gives a verify-only key set (what the authorizer needs, so that its role never
reads the private key): with no private-key reference set, JWT_PUBLIC_KEY_ARN /
JWT_PUBLIC_KEY_PARAM (read and rotated in place like the signing key), else JWT_PUBLIC_KEY from
the environment. AWS values are read by `lucid.secret_store.read_versions` and kept for
`max_age` seconds (300), so a warm function picks up a rotated secret without a redeploy; the
parsed key set is rebuilt only when the material changes. A key AWS will not hand over
(permission, missing secret) raises `SecretUnavailableError` per call, logged with the
permission the role lacks, rather than stopping the function at start.

Rotation in place (a new value of the same secret or parameter, what Secrets Manager rotation
does): new tokens are signed with the new value as soon as a function has read it, and the value
it replaced (the secret's AWSPREVIOUS version, the parameter's previous version) still verifies,
never signs, for `previous_window` seconds after AWS stored the new one: the cache age (a
function that has not re-read yet still signs with the old value) plus a token lifetime plus a
minute of clock skew. After that it verifies nothing. A second rotation replaces it in AWS at
once, but not in a warm function: until the function's next read (within `max_age`), a token
signed with it still matches the cached key and verifies without a re-read, and a function
that last read before the first rotation still signs with it (README, "Rotating the signing
key": how to cut that short).
Both values carry the configured `kid` (JWT_KEY_ID): the verifier tries the current key, then
the previous one. A token that verifies under neither makes the ring re-read AWS at once
(`refresh`), at most once per `REFRESH_INTERVAL_SECONDS` per process, so a token signed by an
instance that has the new value is not refused (and cached as a Deny by API Gateway) by one still
holding the old, and forged tokens cannot drive calls to AWS.

Rotation by key id (env keys, the local stage): tokens carry the `kid` of the key that signed
them (JWT_KEY_ID); the previous key (JWT_PREVIOUS_KEY_ID with JWT_PREVIOUS_SECRET_KEY or
JWT_PREVIOUS_PUBLIC_KEY) still verifies during the rotation window and never signs.

RS256/ES256 keys are read by `lucid.auth.pem`, imported only for those algorithms: it needs the
`cryptography` package, which the default layer leaves out (README, "Signing keys").
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import contextlib
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from lucid import secret_store
from lucid.config import (
    HMAC_KEY_MIN_BYTES,
    Settings,
    get_settings,
    lacks_local_signing_key,
    with_local_signing_key,
)

logger = logging.getLogger("lucid.auth.keys")

DEFAULT_MAX_AGE_SECONDS = 300
# At most one re-read of AWS per process in this long for tokens that fail the cached keys.
REFRESH_INTERVAL_SECONDS = 30.0
# Beyond the cache age and a token lifetime: clock skew between AWS and the function, and the
# time a rotation function takes from creating the new version to making it current.
PREVIOUS_KEY_GRACE_SECONDS = 60
# A verify-only ring's previous public key also covers the rotation of the private key after it
# (README, "Rotating an RS256/ES256 key pair"): the operator waits out this ring's cache
# (max_age), then rotates the private key within this slot, and the auth function may sign with
# the old private key for one more max_age; tokens it signed then still verify until they expire.
PRIVATE_KEY_ROTATION_SLOT_SECONDS = 600


class KeyConfigurationError(RuntimeError):
    """The configured JWT keys are missing, too weak or unreadable: the function must not start."""


class JwtKey(NamedTuple):
    """One key id and what it signs with (None when verify-only) and verifies with."""

    kid: str
    signing: Any
    verifying: Any


class KeySet(NamedTuple):
    """The algorithm, the current key and, during a rotation window, the previous ones."""

    algorithm: str
    current: JwtKey
    previous: tuple[JwtKey, ...] = ()

    def for_kid(self, kid: str) -> list[JwtKey]:
        """The keys a token with header `kid` may verify under, the current one first."""
        return [key for key in (self.current, *self.previous) if key.kid == kid]


# (the current signing material, the previous one still inside its window)
_Material = tuple[bytes | None, bytes | None]


class KeyRing:
    """Builds the `KeySet` for `settings`, re-reading AWS-held material at most every max_age
    (and on `refresh`)."""

    def __init__(
        self,
        settings: Settings,
        max_age: int = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._max_age = max_age
        self._clock = clock
        self._source = secret_store.source_of(settings, "JWT_SECRET_KEY")
        # RS256/ES256 without a private key (the authorizer): the public key's versions.
        self._verify_only = False
        if self._source is None and not _is_hmac(settings):
            self._source = secret_store.source_of(settings, "JWT_PUBLIC_KEY")
            self._verify_only = self._source is not None
        self._lock = threading.Lock()
        self._versions: secret_store.Versions | None = None
        self._read_at = -math.inf
        self._refreshed_at = -math.inf
        self._built: tuple[_Material, KeySet] | None = None

    @property
    def previous_window(self) -> int:
        """Seconds after a rotation in place during which the replaced value still verifies."""
        lifetime = 60 * self._settings.TOKEN_EXPIRE_MINUTES
        window = self._max_age + lifetime + PREVIOUS_KEY_GRACE_SECONDS
        if self._verify_only:  # counted from the public key's change, before the private key's
            window += self._max_age + PRIVATE_KEY_ROTATION_SLOT_SECONDS
        return window

    def keys(self) -> KeySet:
        """The current key set (raises `KeyConfigurationError` if the keys are unusable)."""
        with self._lock:
            now = self._clock()
            if self._source is not None and now - self._read_at >= self._max_age:
                self._versions = self._read(self._source)
                self._read_at = now
            return self._key_set(now)

    def refresh(self) -> bool:
        """Re-read AWS now, because a token failed against the cached keys: True when that
        changed the material. At most once per REFRESH_INTERVAL_SECONDS (False when not due,
        or when the keys do not come from AWS); a failed read raises `SecretUnavailableError`."""
        if self._source is None:
            return False
        with self._lock:
            now = self._clock()
            if now - self._refreshed_at < REFRESH_INTERVAL_SECONDS:
                return False
            self._refreshed_at = now
            before = self._versions
            self._versions = self._read(self._source)
            self._read_at = now
            return self._versions != before

    def _read(self, source: secret_store.SecretSource) -> secret_store.Versions:
        """AWS's versions; when AWS refused the previous one but the current value is the one
        already held, what was read with it (the previous key and the change's date) stands:
        it is the same rotation, and dropping its previous key would refuse valid tokens."""
        versions = secret_store.read_versions(source)
        held = self._versions
        if versions.previous_unread and held is not None and held.current == versions.current:
            return held
        return versions

    def _key_set(self, now: float) -> KeySet:
        material = self._material(now)
        if self._built is None or self._built[0] != material:
            built = _build_key_set(self._settings, *material, verify_only=self._verify_only)
            self._built = (material, built)
        return self._built[1]

    def _material(self, now: float) -> _Material:
        versions = self._versions
        if versions is None:
            settings = self._settings
            env = settings.JWT_SECRET_KEY if _is_hmac(settings) else settings.JWT_PRIVATE_KEY
            return (env.get_secret_value().encode() if env else None, None)
        previous = versions.previous
        if now >= versions.changed_at + self.previous_window:
            previous = None
        return (_as_bytes(versions.current), None if previous is None else _as_bytes(previous))


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _is_hmac(settings: Settings) -> bool:
    return settings.JWT_ALGORITHM.startswith("HS")


def _build_key_set(
    settings: Settings, material: bytes | None, replaced: bytes | None, *, verify_only: bool
) -> KeySet:
    """The key set: `material` signs (verifies only when `verify_only`: it is a public key);
    `replaced` (AWS's previous value) and the configured previous key id only verify."""
    previous_kid = settings.JWT_PREVIOUS_KEY_ID
    if previous_kid is not None and previous_kid == settings.JWT_KEY_ID:
        raise KeyConfigurationError("JWT_PREVIOUS_KEY_ID must differ from JWT_KEY_ID")
    if _is_hmac(settings):
        current = _hmac_key(settings, settings.JWT_KEY_ID, material)
        old = settings.JWT_PREVIOUS_SECRET_KEY
        old_material = old.get_secret_value().encode() if old else None
    else:
        pem = _pem_support(settings.JWT_ALGORITHM)
        if verify_only:  # material is AWS's current value: never None
            public = pem.public_key(settings.JWT_ALGORITHM, material or b"")
            current = JwtKey(settings.JWT_KEY_ID, None, public)
        else:
            current = pem.asymmetric_key(settings, material)
        old_pem = settings.JWT_PREVIOUS_PUBLIC_KEY
        old_material = old_pem.encode() if old_pem else None
    if (previous_kid is None) != (old_material is None):
        raise KeyConfigurationError("a previous JWT key needs both its key and JWT_PREVIOUS_KEY_ID")
    previous: list[JwtKey] = []
    if replaced is not None and replaced != material:
        replaced_key = _replaced_key(settings, replaced, verify_only=verify_only)
        if replaced_key is not None:
            previous.append(replaced_key)
    if previous_kid is not None and old_material is not None:
        if _is_hmac(settings):
            previous.append(_hmac_key(settings, previous_kid, old_material))
        else:
            public = _pem_support(settings.JWT_ALGORITHM).public_key(
                settings.JWT_ALGORITHM, old_material
            )
            previous.append(JwtKey(previous_kid, None, public))
    return KeySet(settings.JWT_ALGORITHM, current, tuple(previous))


def _replaced_key(settings: Settings, replaced: bytes, *, verify_only: bool) -> JwtKey | None:
    """AWS's previous value, verify-only, under the current key id (a rotation in place keeps
    JWT_KEY_ID). One that is unusable is left out, logged: it must not stop the current key."""
    try:
        if _is_hmac(settings):
            verifying: Any = _hmac_key(settings, settings.JWT_KEY_ID, replaced).verifying
        else:
            pem = _pem_support(settings.JWT_ALGORITHM)
            read = pem.public_key if verify_only else pem.verifying_key
            verifying = read(settings.JWT_ALGORITHM, replaced)
    except KeyConfigurationError as error:
        logger.warning("the JWT key's previous version is not used: %s", error)
        return None
    return JwtKey(settings.JWT_KEY_ID, None, verifying)


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
    least = HMAC_KEY_MIN_BYTES[settings.JWT_ALGORITHM]  # its hash's size (RFC 7518 3.2)
    if len(material) < least and not settings.is_local:
        raise KeyConfigurationError(
            f"the {settings.JWT_ALGORITHM} key must be at least {least} bytes "
            f"outside the local stage"
        )
    return JwtKey(kid, material, material)


def check_keys_at_cold_start() -> None:
    """Refuse to start with unusable keys (too short, bad PEM, ...); a key AWS does not hand
    over yet is only logged (by `lucid.secret_store`) and tried again by the requests: a
    function failing its start-up would pay a cold start per request and still not heal.

    Nothing is checked on the local stage without a key: the random one the first token makes
    (`with_local_signing_key`) is always usable, and made here it would be announced by what
    imports the functions and never signs a token (`lucid openapi`)."""
    if lacks_local_signing_key(get_settings()):
        return
    with contextlib.suppress(secret_store.SecretUnavailableError):
        get_key_ring().keys()


@functools.cache
def get_key_ring() -> KeyRing:
    """The process's key ring for `get_settings()` (built on first use, then shared); on the
    local stage with no key configured, a random one (`with_local_signing_key`)."""
    return KeyRing(with_local_signing_key(get_settings()))
