"""The process's Redis client: built once per cold start from REDIS_URI.

A synchronous client on purpose: in Lambda one invocation owns the event loop, so a blocking
call costs nothing extra, and the sync client is several times cheaper per call than the asyncio
one (see ARCHITECTURE.md). The pool blocks (queues) rather than failing when it is exhausted, and
every socket operation is bounded by REDIS_TIMEOUT_MS so a dead Redis never hangs a request.
Opening a connection (TCP connect, and the TLS handshake of a rediss:// URI) is bounded by
REDIS_CONNECT_TIMEOUT_MS instead: a handshake costs the server CPU, and many cold starts at once
(a scale-out) can queue them past the per-command bound.
"""

from __future__ import annotations

import functools
import socket
import ssl
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lucid.config import Settings, get_settings
from lucid.store.unusable import building_client


class TlsConnection(redis.SSLConnection):
    """A rediss:// connection whose TLS handshake is bounded by the connect timeout.

    redis-py sets the per-command `socket_timeout` on the socket as soon as TCP connects and then
    wraps it, so the handshake's reads wait at most REDIS_TIMEOUT_MS each (redis 8.1,
    connection.py: `AbstractConnection._connect`, `SSLConnection._wrap_socket_with_ssl`)."""

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> ssl.SSLSocket:
        sock.settimeout(self.socket_connect_timeout)
        wrapped: ssl.SSLSocket = super()._wrap_socket_with_ssl(sock)  # type: ignore[no-untyped-call]
        wrapped.settimeout(self.socket_timeout)
        return wrapped


def build_redis(settings: Settings) -> redis.Redis:
    """A client for the server REDIS_URI names (the layer starts no server itself); a
    StoreUnusableError (503) when it names none or one redis-py refuses (`lucid.store.unusable`).
    """
    # redis-py refuses a URI with a ValueError: another scheme, a port that is not a number.
    with building_client("REDIS_URI", (ValueError,)):
        return _build_redis(settings, settings.required_uri("REDIS_URI"))


def _build_redis(settings: Settings, uri: str) -> redis.Redis:
    timeout = settings.REDIS_TIMEOUT_MS / 1000
    tls = {"connection_class": TlsConnection} if urlsplit(uri).scheme == "rediss" else {}
    pool = redis.BlockingConnectionPool.from_url(
        uri,
        max_connections=settings.REDIS_MAX_CONNECTIONS,
        timeout=max(timeout, 0.05),
        socket_timeout=timeout,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT_MS / 1000,
        **tls,
        health_check_interval=0,
        # redis-py retries three times with backoff by default: seconds of waiting on a dead
        # server. Here a connection error is retried once at once (a pooled connection may have
        # died with an earlier server) and a timeout not at all; callers then degrade.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    return redis.Redis(connection_pool=pool)


@functools.cache
def get_redis() -> redis.Redis:
    """The process's Redis client (created on first use, then shared)."""
    return build_redis(get_settings())
