"""Request size limits (API Gateway's and Lambda's) and the body memory budget."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from lucid_edge import limits as limits_module
from lucid_edge.events import EventBuilder
from lucid_edge.limits import (
    BodyBudget,
    base64_length,
    event_exceeds_invocation_limit,
    footprint,
    request_line_and_headers_size,
)
from tests.edge.test_edge_instances import run

# Lambda's refusal: "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
# (the event JSON of exactly this many bytes is invoked; lucid_edge.limits cites it)
LAMBDA_LIMIT = 6_291_456


def test_the_quota_counts_the_request_line_and_header_values() -> None:
    headers = [(b"host", b"example.com"), (b"x-long", b"v" * 100)]
    # "GET /a?b=1 HTTP/1.1" is 19 bytes; header names do not count
    assert request_line_and_headers_size("GET", b"/a", b"b=1", headers) == 19 + 11 + 100
    assert request_line_and_headers_size("GET", b"/a", b"", []) == len("GET /a HTTP/1.1")


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 6, 4_718_592])
def test_base64_length_is_the_length_of_the_base64_text(size: int) -> None:
    # What a binary body takes in the event, hence when a declared one is refused unread and
    # what the body budget reserves for it: the body's bytes and their copy in the event
    encoded = len(base64.b64encode(b"\x00" * size))
    assert base64_length(size) == encoded
    assert footprint(size) == size + encoded


def test_the_most_one_body_holds_is_the_readmes_15_mb() -> None:
    # README: "a worker holds at most 64 MiB plus one body (~15 MB)"; the largest body Lambda
    # takes, with its base64 copy in the event
    assert round(footprint(LAMBDA_LIMIT) / 1_000_000) == 15


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
    # AND a text body of more bytes than the limit is over it, whatever else the event holds
    assert _exceeds("x" * (LAMBDA_LIMIT + 1))
    # AND a binary body is measured as its base64 text, whatever bytes it holds
    printable = b"x" * 4_718_592
    assert event_exceeds_invocation_limit(
        _event(base64.b64encode(printable).decode(), True), printable
    )
    assert not event_exceeds_invocation_limit({"version": "2.0", "isBase64Encoded": False}, b"")


@pytest.mark.parametrize(
    "char",
    ["x", " ", '"', "\\", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "é", "✓", "😀"],
)
def test_the_limit_is_on_the_whole_event_json_escapes_and_utf8_included(char: str) -> None:
    # GIVEN a text body of repeated `char`, sized so that the event's JSON is exactly the limit
    empty = len(json.dumps(_event("", False), separators=(",", ":"), ensure_ascii=False).encode())
    per_char = len(json.dumps(char, ensure_ascii=False).encode()) - 2
    count = (LAMBDA_LIMIT - empty) // per_char
    fits = char * count + "y" * (LAMBDA_LIMIT - empty - count * per_char)
    # THEN one more byte is over
    assert not _exceeds(fits)
    assert _exceeds(fits + "y")


def _built(
    path: str, query: str, headers: list[tuple[bytes, bytes]], parameter: str = "proxy"
) -> dict[str, object]:
    # An event as the edge builds it for a `{<parameter>+}` route, before its body is attached
    return EventBuilder("abcdefghij", "$default").build(
        method="POST",
        path=path,
        raw_query=query,
        raw_headers=headers,
        http_version="1.1",
        source_ip="127.0.0.1",
        server_port="8080",
        route_key=f"ANY /{{{parameter}+}}",
        path_parameters={parameter: path.lstrip("/")},
        body=b"",
        request_id="JKJaXmPLvHcESHA=",
    )


_QUOTA_FILLER = 10_240 - 200  # bytes of the request line + header values left to a worst case
# (path, query, headers[, the route's path parameter])
WORST_CASES: dict[str, tuple[Any, ...]] = {
    # each character of Host is in the event three times, and JSON escapes a quote
    "host of quotes": ("/x", "", [(b"host", b'"' * _QUOTA_FILLER)]),
    # a decoded path of control characters: \u00XX three times (rawPath, path, pathParameters)
    "path of controls": ("/" + "\x01" * (_QUOTA_FILLER // 3), "", [(b"host", b"h")]),
    # Lambda counts UTF-8 bytes: two for each é, not the six of an escaped \u00e9
    "path of accented letters": ("/" + "é" * (_QUOTA_FILLER // 6), "", [(b"host", b"h")]),
    "blank query parameters": ("/x", "&".join(f"{i:x}" for i in range(2_000)), []),
    "cookies": ("/x", "", [(b"cookie", b";".join(b"%x" % i for i in range(2_000)))]),
    # each one-character cookie is `"c",` in the event: four bytes of JSON for one of the quota
    "one-character cookies": ("/x", "", [(b"cookie", b";".join([b"c"] * (_QUOTA_FILLER // 2)))]),
    # the template's route key, not the request, is in the event twice (routeKey, and in
    # requestContext) and its parameter's name once more (pathParameters)
    "long route key": ("/x", "", [(b"host", b"h")], "p" * 2_000),
    # header names: not in the quota, and no documented limit on their number
    "header names": ("/x", "", [(b"x-%05d" % i, b"") for i in range(10_000)]),
}


@pytest.mark.parametrize("case", WORST_CASES)
def test_lambdas_limit_holds_whatever_the_request_puts_besides_the_body(case: str) -> None:
    # GIVEN an event built by the edge from a request that makes its non-body part large
    event = _built(*WORST_CASES[case])
    event["isBase64Encoded"] = True
    rest = len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
    room = LAMBDA_LIMIT - rest - len(',"body":""')
    # WHEN its body makes the event's JSON exactly the limit THEN it is invoked; a byte more is not
    assert not event_exceeds_invocation_limit({**event, "body": "A" * room}, b"")
    assert event_exceeds_invocation_limit({**event, "body": "A" * (room + 1)}, b"")


def _taker(budget: BodyBudget, order: list[str]) -> Callable[[str, int], Awaitable[None]]:
    # A body taking `size` of `budget`, noting its name in `order` when it has it.
    async def take(name: str, size: int) -> None:
        await budget.acquire(size)
        order.append(name)

    return take


def test_small_bodies_that_fit_go_ahead_of_a_large_one_that_does_not() -> None:
    budget = BodyBudget(100, reserve_after=60)

    async def main() -> list[str]:
        order: list[str] = []
        take = _taker(budget, order)

        assert await budget.acquire(80) == 80
        big = asyncio.ensure_future(take("big", 60))
        small = asyncio.ensure_future(take("small", 10))  # fits, though it came after "big"
        gone = asyncio.ensure_future(take("gone", 30))  # fits neither: it leaves
        await asyncio.sleep(0)
        assert order == ["small"]
        gone.cancel()
        budget.release(80)
        await asyncio.gather(big, small)
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert budget.available == 100 - 60 - 10
        budget.release(60)
        budget.release(10)
        assert await budget.acquire(1000) == 100  # more than the whole budget takes all of it
        assert budget.available == 0
        return order

    assert run(main()) == ["small", "big"]


def test_a_large_body_that_waited_long_enough_has_the_budget_kept_for_it() -> None:
    budget = BodyBudget(100, reserve_after=0.05)

    async def main() -> list[str]:
        order: list[str] = []
        take = _taker(budget, order)

        await budget.acquire(50)
        big = asyncio.ensure_future(take("big", 80))
        await asyncio.sleep(0.1)  # "big" has waited past reserve_after
        late = asyncio.ensure_future(take("late", 10))  # would fit, but may not pass "big"
        await asyncio.sleep(0)
        assert order == []
        budget.release(50)
        await asyncio.gather(big, late)
        # A head that leaves lets the ones behind it go.
        budget.release(90)
        await budget.acquire(95)
        head = asyncio.ensure_future(take("head", 50))
        await asyncio.sleep(0.1)
        behind = asyncio.ensure_future(take("behind", 5))
        await asyncio.sleep(0)
        assert "behind" not in order
        head.cancel()
        await behind
        return order

    assert run(main()) == ["big", "late", "behind"]


def test_a_worker_holds_64_mib_and_keeps_room_for_a_large_body_once_it_waited_1_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The README's figures: "each worker holds at most 64 MiB of request bodies at once", and a
    # small body that fits goes ahead of a large one "until the large one has waited 1 s"
    clock = [1_000.0]
    monkeypatch.setattr(limits_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    mib = 1024 * 1024

    async def main() -> list[str]:
        budget = BodyBudget()
        assert await budget.acquire(100 * mib) == 64 * mib  # all of it, not a byte more
        budget.release(64 * mib)
        order: list[str] = []
        take = _taker(budget, order)
        await budget.acquire(64 * mib - 10)
        large = asyncio.ensure_future(take("large", 20))
        await asyncio.sleep(0)  # it waits from 1,000 s on
        clock[0] = 1_000.875
        early = asyncio.ensure_future(take("early", 5))
        await asyncio.sleep(0)
        clock[0] = 1_001.0  # the large body has waited 1 s
        late = asyncio.ensure_future(take("late", 5))
        await asyncio.sleep(0)
        assert order == ["early"]
        budget.release(64 * mib - 10)
        await asyncio.gather(early, large, late)
        return order

    assert run(main()) == ["early", "large", "late"]


def test_growing_bodies_go_first_and_never_deadlock_each_other() -> None:
    budget = BodyBudget(100, reserve_after=60)

    async def main() -> None:
        # GIVEN two chunked bodies holding the whole budget between them, and a new body waiting
        await budget.acquire(50)
        await budget.acquire(50)
        new = asyncio.ensure_future(budget.acquire(10))
        first = asyncio.ensure_future(budget.acquire(20, held=50))
        await asyncio.sleep(0.01)
        assert not first.done()  # the other one still reads, and will give back
        # WHEN both want to grow
        second = asyncio.ensure_future(budget.acquire(20, held=50))
        await asyncio.sleep(0.01)
        # THEN the oldest grower goes past the limit: nobody else would give anything back
        assert first.done()
        assert not second.done()
        assert not new.done()
        assert budget.available == -20
        budget.release(70)  # the first body is answered
        await asyncio.sleep(0.01)
        # AND the grower that waited goes before the new body, which follows
        assert second.done()
        assert new.done()
        assert budget.available == 100 - 50 - 20 - 10

    run(main())


def test_a_growing_body_goes_before_a_new_one_that_fits_and_at_once_when_its_step_is_free() -> None:
    budget = BodyBudget(100, reserve_after=60)

    async def main() -> None:
        # GIVEN two bodies read whole (70 and 15) and a chunked one holding 10: 5 left
        await budget.acquire(70)
        await budget.acquire(15)
        await budget.acquire(10)
        # WHEN the chunked body wants 20 more, and then a new body wants 5
        growing = asyncio.ensure_future(budget.acquire(20, held=10))
        new = asyncio.ensure_future(budget.acquire(5))
        await asyncio.sleep(0)
        # THEN the new body does not take the 5 the growing one is waiting for
        assert not growing.done()
        assert not new.done()
        # AND when the 15 are answered, exactly the 20 it wants are free: it goes at once
        budget.release(15)
        await asyncio.sleep(0)
        assert growing.done()
        assert not new.done()
        budget.release(70)
        await asyncio.sleep(0)
        assert new.done()
        assert budget.available == 100 - 10 - 20 - 5

    run(main())


def test_growing_bodies_take_their_next_step_in_arrival_order_each_when_it_fits() -> None:
    budget = BodyBudget(100, reserve_after=60)

    async def main() -> None:
        # GIVEN bodies read whole holding 50 and 10, and two chunked ones holding 20 each
        await budget.acquire(50)
        await budget.acquire(10)
        await budget.acquire(20)
        await budget.acquire(20)
        # WHEN the first chunked body wants 10 more, then the second 30 more
        first = asyncio.ensure_future(budget.acquire(10, held=20))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(budget.acquire(30, held=20))
        await asyncio.sleep(0)
        assert not first.done()
        assert not second.done()
        # AND 10 are given back: the first one's step fits, the second one's does not
        budget.release(10)
        await asyncio.sleep(0)
        # THEN the first goes on and the second waits, the budget never past its limit
        assert first.done()
        assert not second.done()
        assert budget.available == 0
        budget.release(50)
        await asyncio.sleep(0)
        assert second.done()
        assert budget.available == 50 - 30

    run(main())


def test_a_body_granted_as_its_caller_leaves_gives_its_share_back() -> None:
    budget = BodyBudget(100)

    async def main() -> None:
        await budget.acquire(100)
        leaving = asyncio.ensure_future(budget.acquire(10))
        await asyncio.sleep(0)
        budget.release(100)  # grants it ...
        leaving.cancel()  # ... as it is cancelled, before it ran again
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert budget.available == 100

    run(main())


def test_stuck_growing_bodies_take_the_budget_past_its_limit_by_one_body_at_most() -> None:
    # GIVEN four chunked bodies that hold the whole budget between them and each want to grow,
    # 10 bytes at a time, to 60 (as uploads sent round-robin do)
    budget = BodyBudget(100, reserve_after=60)
    step, full = 10, 60

    async def upload(held: list[int], index: int, done: list[int]) -> None:
        while held[index] < full:
            held[index] += await budget.acquire(step, held=held[index])
            await asyncio.sleep(0)  # the next chunk arrives
        budget.release(held[index])  # answered
        done.append(index)

    async def main() -> int:
        held = [await budget.acquire(25) for _ in range(4)]
        done: list[int] = []
        most_held = 0
        uploads = [asyncio.ensure_future(upload(held, i, done)) for i in range(4)]
        while not all(task.done() for task in uploads):
            most_held = max(most_held, budget.limit - budget.available)
            await asyncio.sleep(0)
        assert sorted(done) == [0, 1, 2, 3]  # WHEN they all finish (no deadlock)
        return most_held

    # THEN the worker never held more than the budget plus one body
    assert run(main()) <= 100 + full
    assert budget.available == 100
