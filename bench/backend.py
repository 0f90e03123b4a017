"""A fast stand-in backend cluster for the proxy benchmark: any path answers a small JSON body.

Run as `uvicorn bench.backend:app`; it is what "calling the backend directly" measures.
`bench.backend:slow_app` answers the same after SLOW_BACKEND_SECONDS (default 12), but /health.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

_BODY = b'{"chain":"lucid-testnet","height":123456,"status":"ok"}'
SLOW_SECONDS = float(os.environ.get("SLOW_BACKEND_SECONDS", "12"))
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with the same JSON document."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same answer after SLOW_BACKEND_SECONDS (a backend cluster that is stuck); its own
    GET /health answers at once, so that it can be seen to be up."""
    if scope["type"] == "http" and scope["path"] != "/health":
        await asyncio.sleep(SLOW_SECONDS)
    await app(scope, receive, send)
