"""Request size limits (API Gateway's and Lambda's) and the body memory budget."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from lucid_edge.limits import (
    MAX_INVOCATION_BYTES,
    BodyBudget,
    event_exceeds_invocation_limit,
    request_line_and_headers_size,
)
from tests.edge.test_edge_instances import run


def test_the_quota_counts_the_request_line_and_header_values() -> None:
    headers = [(b"host", b"example.com"), (b"x-long", b"v" * 100)]
    # "GET /a?b=1 HTTP/1.1" is 19 bytes; header names do not count
    assert request_line_and_headers_size("GET", b"/a", b"b=1", headers) == 19 + 11 + 100
    assert request_line_and_headers_size("GET", b"/a", b"", []) == len("GET /a HTTP/1.1")


def _event(body: str, base64_encoded: bool) -> dict[str, object]:
    return {
        "version": "2.0",
        "headers": {"content-type": "application/octet-stream"},
        "requestContext": {"http": {"method": "POST"}},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def _exceeds(text: str) -> bool:
    return event_exceeds_invocation_limit(_event(text, False), text.encode())


def test_an_event_over_lambdas_payload_limit_counts_its_base64_growth() -> None:
    # GIVEN a 4.5 MiB binary body: its base64 text alone is 6 MiB
    raw = b"\x00" * 4_718_592
    assert event_exceeds_invocation_limit(_event(base64.b64encode(raw).decode(), True), raw)
    # A body of the same byte count as text fits.
    assert not _exceeds("x" * 4_718_592)
    assert not event_exceeds_invocation_limit({"version": "2.0", "isBase64Encoded": False}, b"")


@pytest.mark.parametrize("char", ["x", '"', "\\", "\n", "\t", "\x01", "\x1f", "é", "✓", "😀"])
def test_the_limit_is_on_the_whole_event_json_escapes_and_utf8_included(char: str) -> None:
    # GIVEN a text body of repeated `char`, sized so that the event's JSON is exactly the limit
    empty = len(json.dumps(_event("", False), separators=(",", ":"), ensure_ascii=False).encode())
    per_char = len(json.dumps(char, ensure_ascii=False).encode()) - 2
    count = (MAX_INVOCATION_BYTES - empty) // per_char
    fits = char * count + "y" * (MAX_INVOCATION_BYTES - empty - count * per_char)
    # THEN one more byte is over
    assert not _exceeds(fits)
    assert _exceeds(fits + "y")


def test_the_budget_holds_bodies_in_arrival_order_and_gives_back_what_callers_drop() -> None:
    budget = BodyBudget(100)

    async def main() -> list[str]:
        order: list[str] = []

        async def take(name: str, size: int) -> None:
            await budget.acquire(size)
            order.append(name)

        await budget.acquire(80)
        big = asyncio.ensure_future(take("big", 60))
        small = asyncio.ensure_future(take("small", 10))  # fits, but arrived after a waiter
        gone = asyncio.ensure_future(take("gone", 30))
        await asyncio.sleep(0)
        assert order == []
        gone.cancel()
        budget.release(80)
        await asyncio.gather(big, small)
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert budget.available == 100 - 60 - 10
        budget.release(60)
        budget.release(10)
        await budget.acquire(1000)  # more than the whole budget takes all of it
        assert budget.available == 0
        return order

    assert run(main()) == ["big", "small"]
