"""The process's HTTP client and proxy, built once per cold start.

One pooled `httpx.Client` serves every backend: connections are kept alive between
invocations of a warm instance. It ignores proxy environment variables (the backend host is
configuration, nothing else) and follows no redirect (a 3xx is the backend's answer to pass
back). Every socket operation ends by the exchange's deadline (`lucid.proxy.deadline`). Its
default headers are removed, so the backend sees the caller's Accept,
Accept-Encoding and User-Agent, not the client library's.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable

import httpx
import redis

from lucid.config import Settings, get_settings
from lucid.proxy.breaker_store import FallbackStore, LocalBreakerStore, RedisBreakerStore
from lucid.proxy.forwarder import Proxy
from lucid.store.redis_client import get_redis

_LIBRARY_DEFAULT_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")


def build_http_client(settings: Settings) -> httpx.Client:
    """A pooled client with the PROXY_* timeouts (callers narrow them per request)."""
    from lucid.proxy.transport import DeadlineTransport  # imports httpcore: not at cold start

    timeout = httpx.Timeout(
        connect=settings.PROXY_CONNECT_TIMEOUT_SECONDS,
        read=settings.PROXY_READ_TIMEOUT_SECONDS,
        write=settings.PROXY_READ_TIMEOUT_SECONDS,
        pool=settings.PROXY_CONNECT_TIMEOUT_SECONDS,
    )
    client = httpx.Client(
        timeout=timeout,
        transport=DeadlineTransport(httpx.Limits(max_connections=32, max_keepalive_connections=16)),
        follow_redirects=False,
        trust_env=False,
    )
    for name in _LIBRARY_DEFAULT_HEADERS:
        del client.headers[name]
    return client


def build_store(client: redis.Redis | None) -> FallbackStore:
    """Breaker state in Redis (`client`), falling back to this process."""
    shared = RedisBreakerStore(client) if client is not None else None
    return FallbackStore(shared, LocalBreakerStore())


def build_proxy(
    settings: Settings,
    redis_client: redis.Redis | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Proxy:
    """A proxy for `settings` with its own HTTP client; close it with `proxy.close()`."""
    client = build_http_client(settings)
    return Proxy(settings, client, build_store(redis_client), sleep=sleep, rng=rng)


@functools.cache
def get_proxy() -> Proxy:
    """The process's proxy (its breakers count across the invocations of a warm instance)."""
    return build_proxy(get_settings(), get_redis())
