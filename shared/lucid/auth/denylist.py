"""The access-token denylist: revoked `jti`s in Redis until their token would have expired.

One key per token with a TTL, so the list cleans itself and never outgrows the live tokens.
A Redis failure is a `ServiceUnavailableError`: callers decide whether that fails open or closed
(the authorizer fails closed).
"""

from __future__ import annotations

import time

import redis

from lucid.errors import ServiceUnavailableError

KEY_PREFIX = "lucid:denied-jti:"
# Decoding tolerates this much clock skew past exp; the entry must outlive it.
EXPIRY_MARGIN_SECONDS = 30


def deny_token(client: redis.Redis, jti: str, expires_at: int, now: float | None = None) -> None:
    """Refuse the token `jti` from now until `expires_at` (epoch seconds) has surely passed."""
    current = time.time() if now is None else now
    ttl = max(1, int(expires_at - current) + EXPIRY_MARGIN_SECONDS)
    try:
        client.set(KEY_PREFIX + jti, b"1", ex=ttl)
    except redis.RedisError as error:
        raise ServiceUnavailableError("the token denylist is unavailable") from error


def is_token_denied(client: redis.Redis, jti: str) -> bool:
    """True when the token `jti` was revoked."""
    try:
        return bool(client.exists(KEY_PREFIX + jti))
    except redis.RedisError as error:
        raise ServiceUnavailableError("the token denylist is unavailable") from error
