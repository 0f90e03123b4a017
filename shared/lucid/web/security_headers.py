"""The headers every response of our functions carries, whatever produced it.

    X-Content-Type-Options: nosniff   browsers never guess a type other than the one we send
    Cache-Control: no-store           unless the response set its own (a backend's, through the
                                      proxy): tokens, nonces and profiles are never kept in a
                                      cache, shared or private (RFC 9111 section 5.2.2.5)

It wraps the whole FastAPI application, outside Starlette's own error middleware, so that a 500
produced for an unhandled exception carries them too. Errors the edge itself answers (401, 403,
404, 429, 5xx with API Gateway's `{"message": ...}` bodies) are API Gateway's and carry none, as
on AWS.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Pure ASGI wrapper adding the headers above to every HTTP response of `app` (Mangum sends
    it HTTP requests only: lifespan is off, API Gateway has no websockets here)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != NOSNIFF[0]
                ]
                headers.append(NOSNIFF)
                if not any(name.lower() == NO_STORE[0] for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
