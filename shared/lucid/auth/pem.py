"""RS256 and ES256 keys from PEM, loaded and checked with the `cryptography` package.

Imported by `lucid.auth.keys` only when JWT_ALGORITHM is RS256 or ES256. The default layer does
not ship `cryptography` (with cffi and pycparser, 17 MB of the layer and ~25 ms of every cold
start, because PyJWT and pymongo import it whenever it is installed); a deployment that signs with
PEM keys adds it (README, "Signing keys").
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from lucid.auth.keys import JwtKey, KeyConfigurationError
from lucid.config import Settings

MIN_RSA_BITS = 2048

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def asymmetric_key(settings: Settings, material: bytes | None) -> JwtKey:
    """The current key: the private PEM `material` (signs and verifies), or JWT_PUBLIC_KEY
    alone (verify-only); `KeyConfigurationError` when unusable."""
    algorithm = settings.JWT_ALGORITHM
    pem = settings.JWT_PUBLIC_KEY
    public = public_key(algorithm, pem.encode()) if pem else None
    if material is None:
        if public is None:
            raise KeyConfigurationError(f"{algorithm} needs JWT_PRIVATE_KEY or JWT_PUBLIC_KEY")
        return JwtKey(settings.JWT_KEY_ID, None, public)
    private = _private_key(material)
    derived = _checked(algorithm, private.public_key())
    if public is not None and public != derived:
        raise KeyConfigurationError("JWT_PUBLIC_KEY does not belong to the JWT private key")
    return JwtKey(settings.JWT_KEY_ID, private, derived)


def verifying_key(algorithm: str, private_pem: bytes) -> PublicKey:
    """The public half of the private PEM key `private_pem` (a replaced signing key, which now
    only verifies), checked for `algorithm`."""
    return _checked(algorithm, _private_key(private_pem).public_key())


def _private_key(pem: bytes) -> Any:
    try:
        return load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeyConfigurationError("the JWT private key is not an unencrypted PEM key") from error


def public_key(algorithm: str, pem: bytes) -> PublicKey:
    """The public key in `pem`, checked for `algorithm`."""
    try:
        public = load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise KeyConfigurationError("a JWT public key is not a PEM public key") from error
    return _checked(algorithm, public)


def _checked(algorithm: str, public: object) -> PublicKey:
    if algorithm == "RS256":
        if isinstance(public, rsa.RSAPublicKey) and public.key_size >= MIN_RSA_BITS:
            return public
        raise KeyConfigurationError(f"RS256 needs an RSA key of at least {MIN_RSA_BITS} bits")
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1":
        return public
    raise KeyConfigurationError("ES256 needs an EC key on curve P-256")
