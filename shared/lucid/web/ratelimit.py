"""RateLimitMiddleware: the tier check in front of every route of a function (pure ASGI).

Wire it with one line, inside the correlation-id middleware so refusals are logged too:

    app.add_middleware(RateLimitMiddleware)   # before app.add_middleware(RequestContextMiddleware)

It takes the caller and source IP from the request's facts (`lucid.web.middleware`: the API
Gateway event is read once per request), counts the request, adds the rate-limit headers to the
response, or answers 429 (or 503 when Redis is down and RATE_LIMIT_FAIL_MODE=closed) as
problem+json itself.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lucid.errors import LucidError, RateLimitedError
from lucid.observability import count
from lucid.ratelimit.headers import admission_headers, merge_raw, rate_limit_headers
from lucid.ratelimit.limiter import RateLimiter, default_limiter
from lucid.web.middleware import request_facts
from lucid.web.problems import error_response, unexpected_error_response

LimiterFactory = Callable[[], RateLimiter | None]


class RateLimitMiddleware:
    """Counts each HTTP request under its tier; `limiter_factory()` None means "no limits"."""

    def __init__(self, app: ASGIApp, limiter_factory: LimiterFactory = default_limiter) -> None:
        self.app = app
        self.limiter_factory = limiter_factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            limiter = self.limiter_factory() if scope["type"] == "http" else None
        except LucidError as error:  # e.g. REDIS_URI cannot be read from AWS yet: a 503
            await error_response(error, scope["path"])(scope, receive, send)
            return
        if limiter is None or not limiter.enabled:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        facts = request_facts(scope)
        policy, identity = limiter.policy_for(
            facts.caller, facts.source_ip, client[0] if client else None
        )
        try:
            decision = limiter.check(policy, identity)
            if not decision.allowed:
                headers = rate_limit_headers(decision)
                count("RateLimited")
                raise RateLimitedError(
                    f"{policy.quota} requests per {policy.window_seconds} s allowed at the "
                    f"{policy.name} tier; retry in {decision.retry_after} s",
                    extensions={"retry_after": decision.retry_after},
                    headers=headers,
                )
        except LucidError as error:
            await error_response(error, scope["path"])(scope, receive, send)
            return
        count("RateLimitAdmitted")
        # The admission's headers as raw ones, merged into the response's as merge_into would
        # merge rate_limit_headers(decision) (lucid.ratelimit.headers: 13.6 K instructions
        # against 32.3 K, at every limited request).
        added = admission_headers(decision)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = merge_raw(list(message.get("headers", ())), added)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette answers an unexpected error outside every middleware (its
            # ServerErrorMiddleware), so that 500 would carry none of our headers: answer it
            # here, the same problem, and raise on for the handler that logs it (it sends
            # nothing once a response has started: starlette middleware/errors.py).
            if not started:
                await unexpected_error_response(scope["path"])(scope, receive, send_with_headers)
            raise
