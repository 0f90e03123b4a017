"""Fixtures of the proxy layer tests: real backends, settings with small timeouts, proxies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from lucid.config import Settings
from lucid.proxy import Proxy, ProxyRequest, build_proxy
from lucid.store import resp
from lucid_edge.local import EmbeddedRedis
from tests.shared.proxy.proxy_backends import BackendServer, running_backend
from tests.utils.layer_redis import layer_redis

FAST_BREAKER: dict[str, Any] = {
    "PROXY_CONNECT_TIMEOUT_SECONDS": 0.5,
    "PROXY_READ_TIMEOUT_SECONDS": 0.3,
    "PROXY_RETRIES": 2,
    "BREAKER_WINDOW_SECONDS": 5,
    "BREAKER_MIN_CALLS": 4,
    "BREAKER_FAILURE_RATE": 0.5,
    "BREAKER_OPEN_SECONDS": 1,
    "BREAKER_HALF_OPEN_CALLS": 1,
    "BREAKER_SYNC_MS": 0,
}


def proxy_settings(**overrides: Any) -> Settings:
    """Settings with small timeouts and breaker windows; `overrides` win."""
    return Settings(**{**FAST_BREAKER, **overrides})


def proxy_request(
    method: str = "GET",
    prefix: str = "chain",
    remainder: str = "info",
    *,
    query: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    caller: Any = None,
    time_left: float | None = None,
) -> ProxyRequest:
    """A request as the route would hand it to the proxy."""
    return ProxyRequest(
        method=method,
        prefix=prefix,
        remainder=remainder,
        query=query,
        headers=headers or [("accept", "application/json")],
        body=body,
        source_ip="203.0.113.9",
        request_id="req-123",
        caller=caller,
        time_left=time_left,
    )


@pytest.fixture
def backend() -> Iterator[BackendServer]:
    """A running backend answering 200 JSON until the test changes its mode."""
    with running_backend() as server:
        yield server


@pytest.fixture
def make_proxy(
    redis_client: redis.Redis, redis_server: EmbeddedRedis
) -> Iterator[Callable[..., Proxy]]:
    """Build proxies on flushed real Redis (or none); all closed at the end."""
    proxies: list[Proxy] = []
    clients: list[resp.Redis] = []

    def make(settings: Settings, *, shared: bool = True, **kwargs: Any) -> Proxy:
        client = layer_redis(redis_server.uri) if shared else None
        if client is not None:
            clients.append(client)
        proxy = build_proxy(settings, client, **kwargs)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
    for client in clients:
        client.close()
