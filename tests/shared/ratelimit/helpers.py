"""A small function app behind the rate-limit middleware, invoked through Mangum like Lambda."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from fastapi import FastAPI, Request
from mangum import Mangum

from lucid.config import Settings
from lucid.lambda_result import TEXT_MIME_TYPES
from lucid.ratelimit import RateLimiter, enforce_signin_limits
from lucid.store import resp
from lucid.web.middleware import RequestContextMiddleware, request_facts
from lucid.web.problems import install_problem_handlers
from lucid.web.ratelimit import RateLimitMiddleware
from tests.utils.events import http_event

USER = {"user_id": "u-1", "address": "TXYZ", "role": "user", "tier": "authenticated", "jti": "j"}
ADMIN = {**USER, "user_id": "u-admin", "role": "admin", "tier": "admin"}


def limiter_for(client: resp.Redis, retry_seconds: float = 5.0, **limits: Any) -> RateLimiter:
    """A limiter on `client` with `limits` (Settings fields) over the test environment."""
    settings = Settings(**{"RATE_LIMIT_ENABLED": True, **limits})
    return RateLimiter(client, settings, retry_seconds=retry_seconds)


def function_app(limiter: RateLimiter | None) -> Mangum:
    """GET /items and POST /auth/login, wired as a function is: problems, ids, limits."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/items")
    def items() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/auth/login")
    async def login(request: Request) -> dict[str, str]:
        body = await request.json()
        ip = request_facts(request.scope).source_ip or "unknown"
        enforce_signin_limits(ip, body.get("address"), limiter=limiter)
        return {"status": "signed in"}

    app.add_middleware(RateLimitMiddleware, limiter_factory=lambda: limiter)
    app.add_middleware(RequestContextMiddleware)
    return Mangum(app, lifespan="off", text_mime_types=TEXT_MIME_TYPES)


def invoke(handler: Any, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    """Status, lower-cased headers and JSON body of one invocation with a payload 2.0 event."""
    result = handler(http_event(method, path, **kwargs), None)
    headers = {name.lower(): value for name, value in result["headers"].items()}
    return result["statusCode"], headers, json.loads(result["body"])


def hammer(limiter: RateLimiter, ip: str, threads: int, attempts: int) -> int:
    """Requests admitted when `threads` threads each try `attempts` public checks for `ip`."""
    admitted: list[int] = []
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait(timeout=30)
        admitted.append(
            sum(limiter.check(limiter.policies.public, ip).allowed for _ in range(attempts))
        )

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return sum(admitted)


class RecordList(logging.Handler):
    """Keeps every record it handles."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
