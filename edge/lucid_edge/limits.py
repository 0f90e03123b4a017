"""API Gateway's and Lambda's size limits on a request, and the memory its body may hold.

Sizes, each with its source:
- request line + header values: 10,240 bytes ("Total combined size of request line and header
  values", https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html);
- request payload: 10 MB ("Payload size | 10 MB", same page);
- Lambda invocation payload: the whole event JSON, base64 body included, at most 6,291,456
  bytes ("Invocation payload (request and response) | 6 MB each",
  https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html; Lambda's own refusal
  reads "Request must be smaller than 6291456 bytes for the InvokeFunction operation").

Memory: a request's body holds a reservation in its worker's `BodyBudget` from when its first
bytes arrive until its answer is sent, sized for the body and its copy in the event (a chunked
body grows its reservation as its bytes come). Past the budget, bodies wait unread (uvicorn then
stops reading the socket, so the kernel holds them), so a worker holds at most the budget in
request bodies however many arrive at once, plus at most one body let past it (see
`BodyBudget`), plus what uvicorn buffers per connection before the edge reads it. A client that
does not deliver its body in time is answered 408 (lucid_edge.server, BODY_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

MAX_REQUEST_LINE_AND_HEADERS = 10_240
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
MAX_INVOCATION_BYTES = 6_291_456
# What an event holds besides its body: fields of fixed size (under this bound) and the
# request's path, query, header names and values and cookies. Each of their characters appears
# at most three times (the path as rawPath, requestContext.http.path and pathParameters; Host as
# a header, domainName and domainPrefix) and takes at most 6 bytes of JSON (a control character
# as \u00XX; a non-ASCII one at most 4), plus the quotes, colon and comma around a name: at
# most 18 bytes a character. Header names are not part of API Gateway's 10,240-byte quota and
# their number has no documented limit, so the bound is the request's own, not a constant.
_EVENT_FIXED_BOUND = 2048
_EVENT_BYTES_PER_CHARACTER = 18
DEFAULT_BODY_BUDGET = 64 * 1024 * 1024
# A body that does not fit lets smaller ones go ahead for this long, then has the budget kept
# for it: long enough for the small bodies of a burst to pass, short against any client timeout.
RESERVE_AFTER_SECONDS = 1.0


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


def _overhead_bound(event: Mapping[str, Any]) -> int:
    # At least the bytes of the event's JSON besides its body, counted in characters of what
    # the request brought (O(headers), never O(body)).
    headers: Mapping[str, str] = event.get("headers") or {}
    characters = (
        len(event.get("rawPath", ""))
        + len(event.get("rawQueryString", ""))
        + len(event.get("routeKey", ""))
        + sum(len(name) + len(value) + 1 for name, value in headers.items())
        + sum(len(cookie) + 1 for cookie in event.get("cookies", ()))
    )
    return _EVENT_FIXED_BOUND + _EVENT_BYTES_PER_CHARACTER * characters


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
    if high + _overhead_bound(event) <= MAX_INVOCATION_BYTES:
        return False
    if low > MAX_INVOCATION_BYTES:
        return True
    if encoded < 0:
        encoded = len(raw) + _json_escapes(raw)
    rest = {key: value for key, value in event.items() if key != "body"}
    overhead = len(json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return overhead + len(',"body":""') + encoded > MAX_INVOCATION_BYTES


class _Waiter:
    __slots__ = ("future", "growing", "held", "since", "size")

    def __init__(self, size: int, held: int, growing: bool) -> None:
        self.size, self.held, self.growing = size, held, growing
        self.since = time.monotonic()
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class BodyBudget:
    """Bytes of request bodies one worker may hold at once.

    Who goes first when bytes free up, and why:
    - a body growing as its bytes arrive (chunked) before any new body: it already holds part
      of the budget, and finishing it gives all of that back;
    - then waiters in arrival order, but one that does not fit lets smaller ones behind it go
      ahead, so one large body cannot block small ones that fit;
    - until it has waited `reserve_after` seconds: from then on nothing passes it, and the
      bytes freed are kept for it, so a stream of small bodies cannot starve it.
    If every byte held belongs to growing bodies that all wait for more, nothing would ever be
    given back: the one holding most (the oldest of those) may then go past the limit, and
    keeps that turn until it is answered, so the budget is exceeded by at most what one body can
    take, `footprint(MAX_INVOCATION_BYTES)`."""

    def __init__(
        self, limit: int = DEFAULT_BODY_BUDGET, reserve_after: float = RESERVE_AFTER_SECONDS
    ) -> None:
        self.limit = limit
        self.available = limit
        self.reserve_after = reserve_after
        self._waiters: list[_Waiter] = []

    async def acquire(self, size: int, *, held: int = 0) -> int:
        """Wait until `size` more bytes (at most the whole budget) are free, hold them and
        return how many that is (to give back with `release`).

        `held`: what the caller already holds for the same body (a body growing chunk by
        chunk); a caller holding something goes ahead of those holding nothing."""
        size = min(size, self.limit)
        if not self._waiters and size <= self.available:  # nobody to go ahead of
            self.available -= size
            return size
        waiter = _Waiter(size, held, held > 0)
        self._waiters.append(waiter)
        self._admit()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.size)  # granted as the caller left: give it back
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._admit()  # it may have been the head others waited behind
            raise
        return waiter.size

    def release(self, size: int) -> None:
        """Give back `size` bytes and admit the waiters that now may go."""
        self.available += size
        self._admit()

    def _grant(self, waiter: _Waiter) -> None:
        self._waiters.remove(waiter)
        self.available -= waiter.size
        waiter.future.set_result(None)

    def _admit(self) -> None:
        self._waiters = [w for w in self._waiters if not w.future.done()]  # callers gone
        growing = [w for w in self._waiters if w.growing]
        while growing and growing[0].size <= self.available:
            self._grant(growing.pop(0))
        if growing:
            stuck = sum(w.held for w in growing)
            if self.limit - self.available <= stuck:  # no one else will give anything back
                # The one furthest along goes past the limit, again each time it comes back,
                # until it is answered: the oldest would let each stuck body past in turn (N
                # bodies over the limit, not one).
                self._grant(max(growing, key=lambda w: w.held))
            return
        now = time.monotonic()
        for waiter in list(self._waiters):
            if waiter.size <= self.available:
                self._grant(waiter)
            elif now - waiter.since >= self.reserve_after:
                return  # it has waited long enough: what is freed is kept for it
