"""Lambda results -> HTTP responses (payload 2.0 rules) and the edge's own error responses."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

MAX_RESPONSE_BYTES = 6 * 1024 * 1024
_JSON_TYPE = (b"content-type", b"application/json")


class InvalidResultError(ValueError):
    """The function's result is not a valid payload 2.0 response (API Gateway answers 502)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What the edge sends: status, raw header pairs (lower-case names) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def edge_error(status: int, message: str) -> HttpResponse:
    """An error API Gateway itself produces: `{"message": ...}` as application/json."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [_JSON_TYPE], body)


NOT_FOUND = edge_error(404, "Not Found")
UNAUTHORIZED = edge_error(401, "Unauthorized")
FORBIDDEN = edge_error(403, "Forbidden")
TOO_LARGE = edge_error(413, "Request Entity Too Large")
TOO_MANY_REQUESTS = edge_error(429, "Too Many Requests")
INTERNAL_ERROR = edge_error(500, "Internal Server Error")
BAD_GATEWAY = edge_error(502, "Internal Server Error")
UNAVAILABLE = edge_error(503, "Service Unavailable")


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise InvalidResultError(f"{what} must be a string")


def _inferred(result: Any) -> HttpResponse:
    # Payload 2.0: valid JSON without statusCode means 200 + application/json of the result.
    try:
        body = json.dumps(result, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as err:
        raise InvalidResultError("the result is not JSON-serialisable") from err
    if len(body) > MAX_RESPONSE_BYTES:
        raise InvalidResultError("the response is over 6 MB")
    return HttpResponse(200, [_JSON_TYPE], body)


def to_http(result: Any) -> HttpResponse:
    """Translate a handler's return value as API Gateway does; `InvalidResultError` -> 502."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return _inferred(result)
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidResultError("statusCode must be an integer HTTP status")
    raw_headers = result.get("headers") or {}
    cookies = result.get("cookies") or []
    if not isinstance(raw_headers, dict) or not isinstance(cookies, list):
        raise InvalidResultError("headers must be an object and cookies a list")
    try:
        headers = [
            (str(name).lower().encode("latin-1"), _text(value, "a header value").encode("latin-1"))
            for name, value in raw_headers.items()
        ]
        headers.extend((b"set-cookie", _text(c, "a cookie").encode("latin-1")) for c in cookies)
    except UnicodeEncodeError as err:
        raise InvalidResultError("header values must be latin-1 text") from err
    body_text = result.get("body")
    if body_text is None:
        body_text = ""
    if not isinstance(body_text, str):
        raise InvalidResultError("body must be a string")
    if len(body_text) > MAX_RESPONSE_BYTES:
        raise InvalidResultError("the response is over 6 MB")
    if result.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body_text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidResultError("isBase64Encoded body is not base64") from err
    else:
        body = body_text.encode("utf-8")
    return HttpResponse(status, headers, body)
