"""A fast stand-in backend cluster for the proxy benchmark: any path answers a small JSON body.

Run as `uvicorn bench.backend:app`; it is what "calling the backend directly" measures.
"""

from __future__ import annotations

from typing import Any

_BODY = b'{"chain":"lucid-testnet","height":123456,"status":"ok"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with the same JSON document."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
