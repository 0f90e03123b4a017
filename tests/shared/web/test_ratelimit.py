"""How a function wires the middleware: the one-line default, and requests without an event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import redis
from fastapi import APIRouter, FastAPI
from mangum import Mangum

from lucid import observability
from lucid.config import get_settings
from lucid.lambda_result import TEXT_MIME_TYPES
from lucid.ratelimit import default_limiter
from lucid.store import resp
from lucid.web.app import create_app, lambda_handler
from lucid.web.ratelimit import RateLimitMiddleware
from tests.shared.ratelimit.helpers import function_app, invoke, limiter_for


def plain_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    def items() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
def fresh_defaults() -> Iterator[None]:
    """Process-wide settings and limiter rebuilt from the environment, before and after."""
    get_settings.cache_clear()
    default_limiter.cache_clear()
    yield
    get_settings.cache_clear()
    default_limiter.cache_clear()


@pytest.mark.usefixtures("process_limits_on")
def test_the_one_line_wiring_uses_the_process_limiter(redis_client: redis.Redis) -> None:
    app = plain_app()
    app.add_middleware(RateLimitMiddleware)
    handler = Mangum(app, lifespan="off", text_mime_types=TEXT_MIME_TYPES)
    status, headers, _ = invoke(handler, "GET", "/items", source_ip="192.0.2.44")
    assert status == 200
    assert headers["ratelimit-policy"] == '"public";q=100;w=60'
    assert redis_client.exists("lucid:local:rl:public:192.0.2.44")
    assert default_limiter() is default_limiter()  # built once per process


@pytest.mark.usefixtures("fresh_defaults")
def test_rate_limit_enabled_false_turns_the_default_limiter_off(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "false")
    assert default_limiter() is None
    app = plain_app()
    app.add_middleware(RateLimitMiddleware)
    status, headers, _ = invoke(Mangum(app, lifespan="off"), "GET", "/items")
    assert status == 200
    assert "ratelimit" not in headers
    assert redis_client.dbsize() == 0


async def serve(app: FastAPI, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages `app` sends for one ASGI `scope` (no server, no event)."""
    sent: list[dict[str, Any]] = []
    incoming: list[dict[str, Any]] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    if scope["type"] == "http":
        incoming = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


def run(app: FastAPI, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """`serve` on a private loop: asyncio.run would unset the loop Mangum keeps as current."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(serve(app, scope))
    finally:
        loop.close()


def http_scope(forwarded_for: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/items", "raw_path": b"/items", "query_string": b"",
        "root_path": "", "client": ("192.0.2.9", 50000), "server": ("127.0.0.1", 8080),
        "headers": [(b"host", b"127.0.0.1"), (b"x-forwarded-for", forwarded_for.encode())],
    }  # fmt: skip


def test_without_an_api_gateway_event_the_connection_address_is_counted(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN the app served directly (no Mangum, no event), 1 public request per minute
    app = plain_app()
    limiter = limiter_for(store_redis, RATE_LIMIT_PUBLIC=1)
    app.add_middleware(RateLimitMiddleware, limiter_factory=lambda: limiter)
    # the lifespan passes through untouched
    lifespan = run(app, {"type": "lifespan", "asgi": {"version": "3.0"}})
    assert [m["type"] for m in lifespan] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    first = run(app, http_scope("10.9.9.9"))
    refused = run(app, http_scope("10.9.9.8"))
    assert (first[0]["status"], refused[0]["status"]) == (200, 429)
    assert redis_client.keys("*") == [b"lucid:local:rl:public:192.0.2.9"]
    # AND requests with no connection address (a Unix socket) share one budget of their own
    no_address = {**http_scope("10.9.9.7"), "client": None}
    assert [run(app, no_address)[0]["status"] for _ in range(2)] == [200, 429]
    assert sorted(redis_client.keys("*")) == [
        b"lucid:local:rl:public:192.0.2.9",
        b"lucid:local:rl:public:unknown",
    ]


def test_headers_already_set_by_a_route_are_kept(store_redis: resp.Redis) -> None:
    handler = function_app(limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_IP=5))
    status, headers, _ = invoke(handler, "POST", "/auth/login", body={"address": "T1"})
    assert status == 200
    # a successful sign-in only carries the tier's numbers
    assert headers["ratelimit-policy"] == '"public";q=100;w=60'
    assert headers["x-ratelimit-limit"] == "100"


def test_every_decision_is_counted_as_a_metric(store_redis: resp.Redis) -> None:
    # GIVEN 1 public request per minute, and a sink listening as the local edge's metrics do
    heard: list[str] = []

    def sink(function: str | None, name: str) -> None:
        heard.append(name)

    app = plain_app()
    limiter = limiter_for(store_redis, RATE_LIMIT_PUBLIC=1)
    app.add_middleware(RateLimitMiddleware, limiter_factory=lambda: limiter)
    observability.add_sink(sink)
    try:
        # WHEN one request is admitted and the next refused
        statuses = [run(app, http_scope("10.9.9.9"))[0]["status"] for _ in range(2)]
    finally:
        observability.remove_sink(sink)
    # THEN both decisions are counted (RateLimitAdmitted, RateLimited: EMF names)
    assert statuses == [200, 429]
    assert heard == ["RateLimitAdmitted", "RateLimited"]


@pytest.fixture
def process_limits_on(fresh_defaults: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """RATE_LIMIT_ENABLED=true for the process's own settings and limiter."""
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "true")


@pytest.mark.usefixtures("process_limits_on")
def test_an_unexpected_error_is_answered_with_the_rate_limit_headers_too(
    redis_client: redis.Redis,
) -> None:
    # GIVEN a function built by the app factory, limits on, with a route that fails unexpectedly
    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    handler = lambda_handler(create_app("probe", router))
    # WHEN it is called THEN the 500 problem says what the request left of the quota, as every
    # other answer does, and carries its request id
    status, headers, body = invoke(handler, "GET", "/boom", source_ip="192.0.2.45")
    assert status == 500
    assert body["status"] == 500
    assert headers["content-type"] == "application/problem+json"
    assert headers["ratelimit-policy"] == '"public";q=100;w=60'
    assert headers["x-ratelimit-remaining"] == "99"
    assert "x-request-id" in headers
    # AND the request was counted once
    assert redis_client.hget("lucid:local:rl:public:192.0.2.45", "c") == b"1"
