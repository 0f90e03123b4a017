"""The process's Redis client: built once per cold start from REDIS_URI.

A synchronous client on purpose: in Lambda one invocation owns the event loop, so a blocking
call costs nothing extra, and the sync client is several times cheaper per call than the asyncio
one (see ARCHITECTURE.md). The client is the layer's own (`lucid.store.resp`: hiredis parses the
protocol), not redis-py, whose import alone cost each function 50-60 ms of its cold start. The
pool blocks (queues) rather than failing when it is exhausted, and every socket operation is
bounded by REDIS_TIMEOUT_MS so a dead Redis never hangs a request. Opening a connection (TCP
connect, and the TLS handshake of a rediss:// URI) is bounded by REDIS_CONNECT_TIMEOUT_MS
instead: a handshake costs the server CPU, and many cold starts at once (a scale-out) can queue
them past the per-command bound.
"""

from __future__ import annotations

import functools

from lucid.config import Settings, get_settings
from lucid.store import resp
from lucid.store.unusable import building_client


def build_redis(settings: Settings) -> resp.Redis:
    """A client for the server REDIS_URI names (the layer starts no server itself); a
    StoreUnusableError (503) when it names none or one the client refuses
    (`lucid.store.unusable`).
    """
    # A URI is refused with a ValueError: another scheme, a port that is not a number, a query
    # parameter the client does not know (`resp.parse_uri`).
    with building_client("REDIS_URI", (ValueError,)):
        return _build_redis(settings, settings.required_uri("REDIS_URI"))


def _build_redis(settings: Settings, uri: str) -> resp.Redis:
    timeout = settings.REDIS_TIMEOUT_MS / 1000
    # A connection error is retried once at once (a pooled connection may have died with an
    # earlier server) and a timeout not at all (`resp.call_with_retry`); callers then degrade.
    return resp.Redis.from_url(
        uri,
        timeout=timeout,
        connect_timeout=settings.REDIS_CONNECT_TIMEOUT_MS / 1000,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        pool_timeout=max(timeout, 0.05),
    )


@functools.cache
def get_redis() -> resp.Redis:
    """The process's Redis client (created on first use, then shared)."""
    return build_redis(get_settings())


def store_fault(store: str, error: resp.RedisError) -> str:
    """What a 503 says of a Redis failure of `store` ("the sign-in nonce store"): that it
    refused the credentials when Redis did (`resp.refused_credentials`; the function's log has
    one ERROR line saying what to check), else that it is unavailable."""
    if resp.refused_credentials(error):
        return f"{store} refused the credentials"
    return f"{store} is unavailable"
