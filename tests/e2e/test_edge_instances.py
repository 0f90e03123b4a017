"""Functions scale on their own instances, through real HTTP on 127.0.0.1 (issue 11).

The edge serves tests/edge/fixtures/scaling.yaml with an account of ONE concurrent unreserved
invocation, so a held invocation makes every other one queue. The gated test function records
each invocation it runs and holds `/hold` until the test opens its gate.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.edge.harness import FIXTURES, RunningEdge, running_edge

pytestmark = pytest.mark.e2e
INTERNAL_ERROR = {"message": "Internal Server Error"}


@pytest.fixture
def edge() -> Iterator[RunningEdge]:
    with running_edge(FIXTURES / "scaling.yaml", concurrency=1) as running:
        yield running
        for function in running.app.functions.values():
            function.modules["app"].GATE.set()


def code(edge: RunningEdge, function: str) -> ModuleType:
    """The gated module of one function (its RAN log and GATE)."""
    return edge.app.functions[function].modules["app"]


def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    """Run `call` in a thread; its response (or error) lands in the returned list."""
    answers: list[Any] = []

    def target() -> None:
        try:
            answers.append(call())
        except httpx.HTTPError as err:
            answers.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, answers


def test_a_queued_request_past_its_functions_timeout_gets_a_500_and_never_runs(
    edge: RunningEdge,
) -> None:
    # GIVEN the account's only concurrent invocation held by another function
    hold, quick = code(edge, "HoldFunction"), code(edge, "QuickFunction")
    held, held_answer = in_background(lambda: httpx.get(edge.url + "/hold", timeout=15))
    until(lambda: hold.RAN == [""])
    # WHEN a request for a function with Timeout 1 waits in the queue for longer than that
    started = time.monotonic()
    response = httpx.get(edge.url + "/quick?tag=late", timeout=15)
    # THEN it gets what API Gateway answers for a function past its Timeout, from the queue
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert time.monotonic() - started >= 1.0
    hold.GATE.set()
    held.join(15)
    assert held_answer[0].status_code == 200
    # AND once room appears it was never run: the next request is the first Quick ran
    assert httpx.get(edge.url + "/quick?tag=next").text == "next"
    assert quick.RAN == ["next"]


def test_a_client_that_hangs_up_cancels_its_queued_invocation(edge: RunningEdge) -> None:
    hold, quick = code(edge, "HoldFunction"), code(edge, "QuickFunction")
    held, held_answer = in_background(lambda: httpx.get(edge.url + "/hold", timeout=15))
    until(lambda: hold.RAN == [""])
    # GIVEN a request queued behind the held invocation
    port = int(edge.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"GET /quick?tag=gone HTTP/1.1\r\nHost: localhost\r\n\r\n")
        until(lambda: edge.app.account.queued == 1)
    # WHEN its client hangs up, and then room appears
    until(lambda: edge.app.account.queued == 0)
    hold.GATE.set()
    held.join(15)
    assert held_answer[0].status_code == 200
    # THEN it never runs: a later request, which would queue behind it, is the only one that ran
    assert httpx.get(edge.url + "/quick?tag=after").text == "after"
    assert quick.RAN == ["after"]


def test_a_function_past_its_reserved_concurrency_is_throttled_as_lambda_does(
    edge: RunningEdge,
) -> None:
    # GIVEN a function with ReservedConcurrentExecutions 1, busy
    reserved = code(edge, "ReservedFunction")
    held, held_answer = in_background(
        lambda: httpx.get(edge.url + "/reserved/hold?tag=first", timeout=15)
    )
    until(lambda: reserved.RAN == ["first"])
    # WHEN a second request arrives THEN Lambda throttles it and API Gateway answers 500, at once
    response = httpx.get(edge.url + "/reserved/now?tag=second")
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert reserved.RAN == ["first"]
    # AND the reservation is its own: the account's one unreserved invocation is still free
    assert httpx.get(edge.url + "/quick?tag=free").text == "free"
    reserved.GATE.set()
    held.join(15)
    assert held_answer[0].status_code == 200
    assert httpx.get(edge.url + "/reserved/now?tag=third").text == "third"
