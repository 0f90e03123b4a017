"""Lambda results -> HTTP responses (payload 2.0 rules) and the edge's own error responses.

What API Gateway (HTTP API, Lambda proxy integration, payload 2.0) answers, row by row. Errors
API Gateway produces itself are `{"message": "<reason phrase>"}` as application/json.

| case | answer | source |
| --- | --- | --- |
| no route | 404 Not Found | http-api-develop-routes.html |
| route over its throttle | 429 Too Many Requests (8) | http-api-throttling.html |
| request line + header values over 10,240 B | 431 (1) | http-api-quotas.html |
| payload over 10 MB | 413 Request Entity Too Large (1) | http-api-quotas.html |
| event JSON over 6,291,456 B | 413 Request Entity Too Large (2) | Lambda quotas |
| function error (raised) | 500 Internal Server Error | aws/aws-sam-cli#2590 |
| malformed result | 500 Internal Server Error | http-api-troubleshooting-lambda.html |
| function past its own Timeout | 500 Internal Server Error (3) | Lambda quotas |
| result JSON over 6,291,556 B | 500 Internal Server Error (3) | Lambda quotas |
| function throttled (reserved) | 500 Internal Server Error (4) | repost.aws (4) |
| integration timeout (30 s max) | 503 Service Unavailable | serverless/serverless#11222 |
| valid JSON, no statusCode | 200 application/json, body = the JSON or the string | (5) |
| statusCode 100-199 | 500 Internal Server Error (6) | RFC 9110 section 15.2 |
| statusCode 204 or 304 | no body, no content-length, no content-type added (7) | RFC 9110 |
| result with its own Date header | that Date, the only one (9) | sam local (9) |

(1) AWS documents the quota, not the status: 431 is HTTP's status for headers too large (RFC
6585 section 5), 413 for a body (RFC 9110 section 15.5.14).
(2) Lambda refuses the Invoke with RequestTooLargeException, HTTP 413 (API_Invoke.html); a REST
API passes it on as 413 (reported in koki-develop/lgtm-generator#10); HTTP API assumed alike.
(3) Lambda turns both into a function error ("Task timed out after N seconds", "Response
payload size exceeded maximum allowed payload size (6291556 bytes)"): 500, as a raised error.
(4) Lambda's 429 TooManyRequestsException reaches REST API clients as 500 (re:Post question
QUfI6bsdd0SOiPeyimzxSkfQ); HTTP API's answer is undocumented.
(5) http-api-develop-integrations-lambda.html, "Lambda function response for format 2.0": the
output `"Hello from Lambda!"` is interpreted as `"body": "Hello from Lambda!"`.
(6) AWS documents no answer for a 1xx statusCode. An interim status cannot end a response (RFC
9110 section 15.2; a client reads on for the final one), so API Gateway cannot pass it on as
the answer: it is a result in the wrong format, answered as the malformed results above. sam
local (aws-sam-cli fe8f8db, local_apigw_service.py, _parse_v2_payload_format_lambda_output)
checks only `int(statusCode) > 0` and hands the 1xx to Flask.
(7) RFC 9110 section 15.3.5 (204) and 15.4.5 (304): no content; section 8.6: no Content-Length
in a 204. A body the function sets is dropped (sent after the headers, it would be read as the
start of the next response on a kept-alive connection). AWS documents neither case; it adds
`content-type: application/json` only when inferring a result without statusCode (5).
(8) The status is documented ("Clients may receive 429 Too Many Requests error responses"), the
body is API Gateway's usual `{"message": ...}` (not written there: notes/aws-facts.md section 5);
no function runs, so none of a function's rate-limit headers or Retry-After come with it.
(9) Date is not among an HTTP API's reserved headers (http-api-parameter-mapping.html, "Reserved
headers": a response mapping may overwrite it), so a function's Date is an ordinary header of its
response; AWS documents no second one, and RFC 9110 section 6.6.1 allows one value. sam local
hands the function's headers to Flask (aws-sam-cli `BaseLocalService.service_response`), whose
server adds its own Date only when the response has none (werkzeug serving.py, `run_wsgi`:
`if "date" not in header_keys`). The edge does the same (`http_date`, with uvicorn's own Date
turned off): not two Date fields, as uvicorn sends beside a function's.
The pages are under https://docs.aws.amazon.com/apigateway/latest/developerguide/, and
https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html for Lambda's quotas.
Where sam local answers otherwise, or AWS is silent, README's "differences from AWS" says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

MAX_RESPONSE_BYTES = 6_291_556
# A character takes at most 12 bytes of the result's JSON (a surrogate pair of \u escapes): a
# result whose text is shorter than a twelfth of the limit cannot reach it, and only a longer one
# is measured as Lambda does (json.dumps of the whole result).
_MAX_BYTES_PER_CHAR = 12
# What a result's JSON holds besides the characters counted: its five keys, quotes, braces,
# separators, the status and the boolean (under 100 bytes; a bare string result: two quotes).
_BODY_FRAME = 256
_RESULT_KEYS = frozenset({"statusCode", "headers", "cookies", "body", "isBase64Encoded"})
_JSON_TYPE = (b"content-type", b"application/json")
# Statuses whose responses carry no content and no Content-Length (RFC 9110 sections 8.6,
# 15.3.5 and 15.4.5).
NO_CONTENT_STATUSES = frozenset({204, 304})
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9a-z-]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The Date field's value for now (RFC 9110 IMF-fixdate), made once per second."""
    global _date  # one cache per process, as uvicorn keeps its own
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, usegmt=True).encode())
    return _date[1]


def with_date(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with a Date field added unless they have one (note (9))."""
    if not any(name == b"date" for name, _ in headers):
        headers.append((b"date", http_date()))
    return headers


class InvalidResultError(ValueError):
    """The function's result is not a valid payload 2.0 response (API Gateway answers 500)."""


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
REQUEST_TIMEOUT = edge_error(408, "Request Timeout")
HEADERS_TOO_LARGE = edge_error(431, "Request Header Fields Too Large")
TOO_MANY_REQUESTS = edge_error(429, "Too Many Requests")
INTERNAL_ERROR = edge_error(500, "Internal Server Error")
UNAVAILABLE = edge_error(503, "Service Unavailable")


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise InvalidResultError(f"{what} must be a string")


def _result_json_size(result: Any) -> int:
    # What the Python runtime sends Lambda: the result as JSON (json.dumps' defaults).
    try:
        return len(json.dumps(result).encode("utf-8"))
    except (TypeError, ValueError) as err:  # Runtime.MarshalError: a function error too
        raise InvalidResultError("the result is not JSON-serialisable") from err


def _inferred(result: Any) -> HttpResponse:
    # Payload 2.0 format inference: valid JSON without statusCode is a 200 application/json
    # whose body is the output; a bare string is the body itself, unquoted (see the table).
    if isinstance(result, str):
        text = result
    else:
        try:
            text = json.dumps(result, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise InvalidResultError("the result is not JSON-serialisable") from err
    _check_size(result, len(text))
    return HttpResponse(200, [_JSON_TYPE], text.encode("utf-8"))


def _check_size(result: Any, chars: int) -> None:
    # `chars`: characters of the result's text (each at most _MAX_BYTES_PER_CHAR of its JSON).
    bound = _BODY_FRAME + _MAX_BYTES_PER_CHAR * chars
    if bound > MAX_RESPONSE_BYTES and _result_json_size(result) > MAX_RESPONSE_BYTES:
        raise InvalidResultError("the response is over 6,291,556 bytes")


def to_http(result: Any) -> HttpResponse:
    """Translate a handler's return value as API Gateway does; `InvalidResultError` -> 500."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return _inferred(result)
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidResultError("statusCode must be an integer HTTP status")
    if status < 200:
        # 1xx is interim (RFC 9110 section 15.2): never the final answer to a request, so no
        # HTTP server can send it as one. See the table, note (6).
        raise InvalidResultError("statusCode 1xx is not a final HTTP status")
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
    for name, value in headers:
        # What no HTTP server can send (and API Gateway answers 500 for, as for any malformed
        # result): a name that is not an RFC 9110 token, a value with control characters.
        if not _HEADER_NAME.fullmatch(name) or _BAD_VALUE.search(value):
            raise InvalidResultError("a header name or value is not valid HTTP")
    body_text = result.get("body")
    if body_text is None:
        body_text = ""
    if not isinstance(body_text, str):
        raise InvalidResultError("body must be a string")
    # Lambda limits the whole result, not its body: headers, cookies and any other key count
    # (a header or cookie adds its characters and at most 6 of quotes and separators).
    fields = sum(len(name) + len(value) + 6 for name, value in headers)
    if result.keys() - _RESULT_KEYS:  # keys API Gateway ignores still count: measure them all
        fields = MAX_RESPONSE_BYTES
    _check_size(result, len(body_text) + fields)
    if result.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body_text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidResultError("isBase64Encoded body is not base64") from err
    else:
        body = body_text.encode("utf-8")
    if status in NO_CONTENT_STATUSES:
        body = b""  # see the table, note (7)
    return HttpResponse(status, headers, body)
