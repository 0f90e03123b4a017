"""API Gateway's and Lambda's size limits on a request, and the memory its body may hold.

Sizes, each with its source:
- request line + header values: 10,240 bytes ("Total combined size of request line and header
  values", https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html);
- request payload: 10 MB ("Payload size | 10 MB", same page);
- Lambda invocation payload: the whole event JSON, base64 body included, at most 6,291,456
  bytes ("Invocation payload (request and response) | 6 MB each",
  https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html; Lambda's own refusal
  reads "Request must be smaller than 6291456 bytes for the InvokeFunction operation").

Memory: every request with a body holds a reservation in its worker's `BodyBudget` from before
its body is read until its answer is sent, sized for the body and its copy in the event. Past the
budget, bodies wait unread (uvicorn then stops reading the socket, so the kernel holds them), so
a worker holds at most the budget in request bodies however many arrive at once.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Iterable, Mapping
from typing import Any

MAX_REQUEST_LINE_AND_HEADERS = 10_240
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
MAX_INVOCATION_BYTES = 6_291_456
# What an event holds besides its body is bounded by the request line and headers (10 KB, each
# appearing at most twice, JSON escaping at most doubling them) plus fixed fields: below this,
# a body alone decides whether the event fits.
_EVENT_OVERHEAD_BOUND = 64 * 1024
DEFAULT_BODY_BUDGET = 64 * 1024 * 1024


def request_line_and_headers_size(
    method: str, raw_path: bytes, query: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> int:
    """Bytes of `METHOD target HTTP/1.1` plus every header value, as the quota counts them."""
    target = len(raw_path) + (len(query) + 1 if query else 0)
    return len(method) + 1 + target + len(" HTTP/1.1") + sum(len(v) for _, v in headers)


def base64_length(size: int) -> int:
    """Characters of the base64 text of `size` bytes."""
    return 4 * ((size + 2) // 3)


def smallest_encoding(size: int, text: bool) -> int:
    """The fewest bytes a body of `size` bytes can take in the event JSON."""
    return size if text else base64_length(size)


def footprint(size: int) -> int:
    """Memory the edge reserves for a body of `size` bytes: the bytes and the event's copy."""
    return size + base64_length(size)


_SHORT_ESCAPES = tuple(bytes([c]) for c in b'"\\\b\f\n\r\t')  # one byte more each in JSON
_CONTROLS = bytes(range(0x20))  # other control characters become \u00XX: five bytes more


def _json_escapes(text: bytes | bytearray) -> int:
    # Bytes JSON adds to UTF-8 text (the characters Python's and Java's encoders escape),
    # counted in C without decoding the text again.
    short = sum(text.count(c) for c in _SHORT_ESCAPES)
    controls = len(text) - len(text.translate(None, _CONTROLS))
    short_controls = sum(text.count(c) for c in _SHORT_ESCAPES[2:])
    return short + 5 * (controls - short_controls)


def event_exceeds_invocation_limit(event: Mapping[str, Any], raw: bytes | bytearray) -> bool:
    """True when the event's JSON is over Lambda's 6,291,456-byte invocation payload.

    `raw` is the request body the event carries (as text, or base64)."""
    body = event.get("body")
    if body is None:
        return False
    if event.get("isBase64Encoded"):
        encoded = low = high = len(body)  # base64 is ASCII and needs no escaping
    else:
        # JSON takes 1 to 6 bytes per byte of UTF-8 (6: a control character as \u00XX).
        encoded, low, high = -1, len(raw), 6 * len(raw)
    if high + _EVENT_OVERHEAD_BOUND <= MAX_INVOCATION_BYTES:
        return False
    if low > MAX_INVOCATION_BYTES:
        return True
    if encoded < 0:
        encoded = len(raw) + _json_escapes(raw)
    rest = {key: value for key, value in event.items() if key != "body"}
    overhead = len(json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return overhead + len(',"body":""') + encoded > MAX_INVOCATION_BYTES


class BodyBudget:
    """Bytes of request bodies one worker may hold at once; waiters are served in order."""

    def __init__(self, limit: int = DEFAULT_BODY_BUDGET) -> None:
        self.limit = limit
        self.available = limit
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, size: int) -> None:
        """Wait until `size` bytes (at most the whole budget) are free, then hold them."""
        size = min(size, self.limit)
        if not self._waiters and size <= self.available:
            self.available -= size
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(size)  # granted as the caller left: give it back
            elif entry in self._waiters:
                self._waiters.remove(entry)
            raise

    def release(self, size: int) -> None:
        """Give back `size` bytes and admit waiters that now fit, first come first served."""
        self.available += min(size, self.limit)
        while self._waiters and self._waiters[0][0] <= self.available:
            size, future = self._waiters.popleft()
            if not future.done():  # a cancelled waiter takes nothing
                self.available -= size
                future.set_result(None)
