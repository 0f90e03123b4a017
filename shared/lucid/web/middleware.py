"""The request middleware every function runs: request id and access log.

It is the outermost middleware, and the first thing it does is read what API Gateway vouches for
(the caller in the authorizer context, the source IP) out of the event, once: the rate limiter,
the route dependencies and the access log all take it from the scope's state afterwards.
Pure ASGI (not BaseHTTPMiddleware), so it adds a few microseconds, not a task per request.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import logging
import re
import time
from typing import NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lucid.identity import CallerIdentity, caller_from_event, source_ip_from_event
from lucid.observability import observe_request

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:=+/-]{1,128}$")

_FACTS = "lucid.request"

access_logger = logging.getLogger("lucid.access")


class RequestFacts(NamedTuple):
    """What API Gateway vouches for about one request: the signed-in caller and the client IP."""

    caller: CallerIdentity | None
    source_ip: str | None  # None when the app is served without an API Gateway event


def request_facts(scope: Scope) -> RequestFacts:
    """The facts of the request behind `scope`, parsed from its event on first use only.

    The outermost middleware asks first, so the event is parsed once per request whoever asks
    later; an app served without that middleware (tests, a bare ASGI server) still gets them.
    """
    state = scope.setdefault("state", {})
    facts: RequestFacts | None = state.get(_FACTS)
    if facts is None:
        event = scope.get("aws.event")
        facts = RequestFacts(caller_from_event(event), source_ip_from_event(event))
        state[_FACTS] = facts
    return facts


def route_key_of(scope: Scope) -> str | None:
    """The API Gateway route key the request came in by ("GET /users/{id}"), if any."""
    context = (scope.get("aws.event") or {}).get("requestContext")
    route = context.get("routeKey") if isinstance(context, dict) else None
    return route if isinstance(route, str) else None


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is well formed, else API Gateway's request id.

    What the response echoes as X-Request-ID and the access line logs as `request_id`; every
    line also carries API Gateway's own id as `correlation_id` (`lucid.observability`)."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SAFE_REQUEST_ID.match(value):
            return str(value.decode("ascii"))
    context = (scope.get("aws.event") or {}).get("requestContext")
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return str(request_id) if request_id else "local-" + str(time.time_ns())


class RequestContextMiddleware:
    """Reads the request's facts, sets `scope["state"]["request_id"]` and echoes it as
    X-Request-ID, logs one line per call and records its latency and outcome as metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        facts = request_facts(scope)
        request_id = request_id_of(scope)
        scope["state"]["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            observe_request(route_key_of(scope), status, duration_ms)
            if access_logger.isEnabledFor(logging.INFO):
                access_logger.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": duration_ms,
                        "user_id": facts.caller.user_id if facts.caller else None,
                    },
                )
