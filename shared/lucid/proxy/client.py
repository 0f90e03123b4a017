"""The process's HTTP client and proxy, built once per cold start.

One pool of connections (`httpcore.ConnectionPool`, `lucid.proxy.transport`) serves every
backend: connections are kept alive between invocations of a warm instance. It reads no proxy
environment variable (the backend host is configuration, nothing else), follows no redirect (a
3xx is the backend's answer to pass back) and adds no header of its own beyond the framing
ones, so the backend sees the caller's Accept, Accept-Encoding and User-Agent. Every socket
operation ends by the exchange's deadline (`lucid.proxy.deadline`).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable

import httpcore

from lucid.config import Settings, get_settings
from lucid.proxy.breaker_store import FallbackStore, LocalBreakerStore, RedisBreakerStore
from lucid.proxy.forwarder import Proxy
from lucid.proxy.transport import connection_pool
from lucid.store import resp
from lucid.store.redis_client import get_redis

MAX_CONNECTIONS, MAX_KEEPALIVE_CONNECTIONS = 32, 16


def build_http_client() -> httpcore.ConnectionPool:
    """The pool of connections to the backends (timeouts are given per request, from the
    PROXY_* settings and the exchange's deadline: `Proxy._timeout`)."""
    return connection_pool(MAX_CONNECTIONS, MAX_KEEPALIVE_CONNECTIONS)


def build_store(client: resp.Redis | None) -> FallbackStore:
    """Breaker state in Redis (`client`), falling back to this process."""
    shared = RedisBreakerStore(client) if client is not None else None
    return FallbackStore(shared, LocalBreakerStore())


def build_proxy(
    settings: Settings,
    redis_client: resp.Redis | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Proxy:
    """A proxy for `settings` with its own HTTP client; close it with `proxy.close()`."""
    client = build_http_client()
    return Proxy(settings, client, build_store(redis_client), sleep=sleep, rng=rng)


@functools.cache
def get_proxy() -> Proxy:
    """The process's proxy (its breakers count across the invocations of a warm instance)."""
    return build_proxy(get_settings(), get_redis())
