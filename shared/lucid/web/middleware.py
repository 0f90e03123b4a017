"""The request middleware every function runs: correlation id, access log, metrics flush.

Pure ASGI (not BaseHTTPMiddleware), so it adds a few microseconds, not a task per request.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lucid.observability import flush_metrics

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:=+/-]{1,128}$")

access_logger = logging.getLogger("lucid.access")


def request_context(scope: Scope) -> dict[str, Any]:
    """The API Gateway `requestContext` of the event Mangum put in `scope` ({} outside Lambda)."""
    event = scope.get("aws.event") or {}
    context = event.get("requestContext")
    return dict(context) if isinstance(context, dict) else {}


def correlation_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is well formed, else API Gateway's request id."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SAFE_REQUEST_ID.match(value):
            return str(value.decode("ascii"))
    request_id = request_context(scope).get("requestId")
    return str(request_id) if request_id else "local-" + str(time.time_ns())


class RequestContextMiddleware:
    """Sets `scope["state"]["request_id"]`, echoes it as X-Request-ID, logs one line per call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = correlation_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
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
            if access_logger.isEnabledFor(logging.INFO):
                caller = request_context(scope).get("authorizer", {}).get("lambda") or {}
                access_logger.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "user_id": caller.get("user_id"),
                    },
                )
            flush_metrics()
