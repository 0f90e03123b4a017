"""Access tokens: short-lived JWTs that every protected route trusts (RFC 8725 practice).

Issuing signs with the current key and puts its `kid` in the header. Decoding accepts exactly
the configured algorithm (never `none`, never a different family, so an RS256 public key can
not be replayed as an HS256 secret), a `kid` we know (current or previous), and requires
exp/iat/nbf/iss/aud/sub/jti/sid with JWT_LEEWAY_SECONDS of clock leeway (lucid.config bounds it),
`typ` == "access" and a lifetime (exp - iat) within TOKEN_EXPIRE_MINUTES, the time revocations
are kept for. Every failure is an `InvalidTokenError` whose detail names the reason and never
echoes the token.

Refresh tokens are not JWTs (see `lucid.auth.refresh`): a refresh token fails here as "not a JWT",
and an access token is unknown to the refresh store.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import base64
import functools
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, NamedTuple, Self

import jwt

from lucid.auth.keys import JwtKey, KeyRing, KeySet, get_key_ring
from lucid.config import Settings, get_settings
from lucid.errors import InvalidTokenError
from lucid.identity import Role, tier_for_role

ACCESS_TOKEN_TYPE: Final = "access"  # noqa: S105 - a claim value, not a secret
# Our tokens are ~500 bytes; refusing long input bounds the work done before the signature check.
MAX_TOKEN_LENGTH = 4096
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "sid"]
# RFC 7515 section 7.1: three unpadded base64url segments.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# ES256 (RFC 7518 section 3.4): the signature is r || s, 32 bytes each, on P-256, whose order is
# n (SEC 2 section 2.4.2). (r, s) and (r, n - s) both verify: we issue the low-s one only and
# refuse its high-s twin, so one token has one spelling (API Gateway caches each Authorization
# value's decision apart), as for TRON signatures (lucid.auth.tron).
P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ES256_SIGNATURE_TEXT = 86  # base64url characters of 64 bytes, unpadded


class TokenClaims(NamedTuple):
    """The claims of a valid access token (`lucid.auth.schemas.AccessClaims` is how POST
    /auth/verify answers them). A plain record checked by `from_payload`, not a pydantic
    model: the authorizer decodes tokens and imports no pydantic at all, a third of its cold
    start's CPU (`make bench coldstart`, lucid.config)."""

    iss: str
    aud: str
    sub: str
    addr: str
    role: Role
    tier: str
    iat: int
    nbf: int
    exp: int
    jti: str
    sid: str
    typ: Literal["access"] = ACCESS_TOKEN_TYPE

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        """The claims of a verified JWT payload; InvalidTokenError when one is missing or of
        the wrong type (other claims are ignored)."""
        values: dict[str, Any] = {}
        for name, kind in _CLAIM_TYPES.items():
            value = payload.get(name)
            if kind is int and isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InvalidTokenError("token claims are malformed")
            values[name] = value
        try:
            values["role"] = Role(values["role"])
        except ValueError:
            raise InvalidTokenError("token claims are malformed") from None
        if payload.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidTokenError("token is not an access token")
        return cls(**values)


# Every claim an access token carries but `typ`, and its JSON type.
_CLAIM_TYPES: dict[str, type] = {
    "iss": str,
    "aud": str,
    "sub": str,
    "addr": str,
    "role": str,
    "tier": str,
    "iat": int,
    "nbf": int,
    "exp": int,
    "jti": str,
    "sid": str,
}


class IssuedAccessToken(NamedTuple):
    """A freshly signed access token and what it says."""

    token: str
    claims: TokenClaims

    @property
    def expires_in(self) -> int:
        """Lifetime in seconds, as OAuth's `expires_in`."""
        return self.claims.exp - self.claims.iat


_BAD_SIGNATURE: Final = "token signature is invalid"
# Most specific first: several PyJWT errors subclass DecodeError or InvalidTokenError. No
# InvalidAlgorithmError: `decode` refuses a header `alg` other than the configured one before
# PyJWT runs, and PyJWT supports every algorithm lucid.config allows.
_FAILURES: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.DecodeError, "token is malformed"),
]


class TokenService:
    """Issues and decodes access tokens with the keys of `key_ring`."""

    def __init__(
        self,
        settings: Settings,
        key_ring: KeyRing,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._key_ring = key_ring
        self._clock = clock

    def issue(self, user_id: str, address: str, role: Role, session_id: str) -> IssuedAccessToken:
        """A new access token for the user `user_id` signed in as `address` with `role`, in the
        sign-in `session_id` (its refresh-token family)."""
        keys = self._key_ring.keys()
        now = int(self._clock())
        claims = TokenClaims(
            iss=self._settings.JWT_ISSUER,
            aud=self._settings.JWT_AUDIENCE,
            sub=user_id,
            addr=address,
            role=Role(role),
            tier=tier_for_role(role).value,
            iat=now,
            nbf=now,
            exp=now + 60 * self._settings.TOKEN_EXPIRE_MINUTES,
            jti=secrets.token_urlsafe(16),
            sid=session_id,
            typ=ACCESS_TOKEN_TYPE,
        )
        token = jwt.encode(
            claims._asdict(),
            keys.current.signing,
            algorithm=keys.algorithm,
            headers={"kid": keys.current.kid},
        )
        if keys.algorithm == "ES256":
            token = _low_s(token)
        return IssuedAccessToken(token=token, claims=claims)

    def decode(self, token: str) -> TokenClaims:
        """The claims of `token` if it is a valid access token, else `InvalidTokenError`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("token is too long")
        if token.count(".") != 2:
            raise InvalidTokenError("token is not a JWT")
        if not _COMPACT_JWS.fullmatch(token):
            # PyJWT accepts '=' padding (for AWS ALB's tokens); ours never carry any, and one
            # token must have one spelling: API Gateway caches decisions per Authorization value.
            raise InvalidTokenError("token is malformed")
        keys = self._key_ring.keys()
        header = _header(token)
        if header.get("alg") != keys.algorithm:
            raise InvalidTokenError("token algorithm is not accepted")
        if keys.algorithm == "ES256" and _es256_s(token) > P256_ORDER // 2:
            raise InvalidTokenError("token signature is not canonical (high-s)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidTokenError("token has no key id")
        try:
            payload = self._verified_payload(token, _keys_for(keys, kid), keys.algorithm)
        except InvalidTokenError as error:
            # Signed by a key this instance does not hold yet (the secret was rotated in place
            # and another instance has read it): re-read AWS once, rate-limited, and try again.
            # A kid we do not know is refused without a re-read: key ids come from the
            # configuration, which AWS's key material cannot change.
            if error.detail != _BAD_SIGNATURE or not self._key_ring.refresh():
                raise
            keys = self._key_ring.keys()
            payload = self._verified_payload(token, _keys_for(keys, kid), keys.algorithm)
        claims = TokenClaims.from_payload(payload)  # typ == "access" included
        if claims.exp - claims.iat > 60 * self._settings.TOKEN_EXPIRE_MINUTES:
            # Issued under a longer TOKEN_EXPIRE_MINUTES: revocations are kept for this lifetime
            # only (lucid.auth.revocation), so its sign-in's logout would stop holding before
            # it expires. The client refreshes, as on any expiry.
            raise InvalidTokenError("token outlives the configured token lifetime")
        return claims

    def _verified_payload(self, token: str, keys: list[JwtKey], algorithm: str) -> dict[str, Any]:
        """The payload of `token` verified under the first of `keys` its signature matches."""
        settings = self._settings
        for key in keys:
            try:
                payload: dict[str, Any] = jwt.decode(
                    token,
                    key.verifying,
                    algorithms=[algorithm],
                    audience=settings.JWT_AUDIENCE,
                    issuer=settings.JWT_ISSUER,
                    leeway=settings.JWT_LEEWAY_SECONDS,  # bounded by lucid.config
                    options={"require": REQUIRED_CLAIMS, "strict_aud": True},
                )
            except jwt.InvalidSignatureError:
                continue  # the signature is checked before the claims: try the next key
            except jwt.MissingRequiredClaimError as error:
                raise InvalidTokenError(f"token lacks the {error.claim!r} claim") from None
            except jwt.PyJWTError as error:
                raise InvalidTokenError(_failure_detail(error)) from None
            return payload
        raise InvalidTokenError(_BAD_SIGNATURE)


def _es256_s(token: str) -> int:
    """The s of an ES256 token's signature; 0 (left to the signature check, which refuses it)
    when the signature is not 64 bytes."""
    text = token.rpartition(".")[2]
    if len(text) != _ES256_SIGNATURE_TEXT:
        return 0
    return int.from_bytes(base64.urlsafe_b64decode(text + "==")[32:], "big")


def _low_s(token: str) -> str:
    """`token` with its ES256 signature's s replaced by n - s when s is high (the same
    signature, the one spelling `decode` accepts)."""
    s = _es256_s(token)
    if s <= P256_ORDER // 2:
        return token
    signed, _, text = token.rpartition(".")
    r = base64.urlsafe_b64decode(text + "==")[:32]
    low = r + (P256_ORDER - s).to_bytes(32, "big")
    return signed + "." + base64.urlsafe_b64encode(low).rstrip(b"=").decode()


def _keys_for(keys: KeySet, kid: str) -> list[JwtKey]:
    found = keys.for_kid(kid)
    if not found:
        raise InvalidTokenError("token key id is unknown")
    return found


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidTokenError("token is malformed") from None


def _failure_detail(error: jwt.PyJWTError) -> str:
    for kind, detail in _FAILURES:
        if isinstance(error, kind):
            return detail
    return "token claims are invalid"


@functools.cache
def get_token_service() -> TokenService:
    """The process's token service (built on first use, then shared)."""
    return TokenService(get_settings(), get_key_ring())
