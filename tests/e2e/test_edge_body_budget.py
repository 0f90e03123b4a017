"""Slow and stalled request bodies cannot take a worker's body budget from everyone else.

Raw sockets on 127.0.0.1 play the clients that stall or trickle (an HTTP client library would
send the body at once); httpx plays the ordinary ones. The edge is served in-process (uvicorn,
one worker) so the test can read its budget, and once as `lucid serve` in a subprocess, where
LUCID_EDGE_BODY_TIMEOUT sets the deadline.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from lucid_edge.limits import RESERVE_AFTER_SECONDS
from lucid_edge.server import CHUNKED_STEP
from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge
from tests.edge.harness import FIXTURES, RunningEdge, running_edge

pytestmark = pytest.mark.e2e
BODY_TIMEOUT = 2.0
DECLARED = 6_000_000  # text: fits Lambda's limit; 14 MB of budget (the bytes and the event's)
HELD = 14_000_000  # what DECLARED holds: 6,000,000 bytes and 8,000,000 characters of base64
STALLED = 5  # 5 x 14 MB is over the 64 MiB budget
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEdge]:
    with running_edge(body_timeout=BODY_TIMEOUT) as running:
        yield running


def _open(url: str, path: str, headers: str, sent: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode() + sent)
    return sock


def _upload(url: str, declared: int, sent: bytes = b"") -> socket.socket:
    """A POST /echo declaring `declared` bytes of text that sends only `sent` of them."""
    headers = f"Content-Type: text/plain\r\nContent-Length: {declared}\r\n"
    return _open(url, "/echo", headers, sent)


def _response(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """Status, header block and body of the next response on `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), head.lower(), body


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _eventually(check: Callable[[], bool], seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _assert_timed_out(sock: socket.socket) -> None:
    status, head, body = _response(sock)
    assert (status, body) == (408, b'{"message":"Request Timeout"}')
    assert b"connection: close" in head
    assert _closed(sock)
    sock.close()


def test_stalled_uploads_hold_nothing_and_are_answered_408(edge: RunningEdge) -> None:
    budget = edge.app.budget
    # GIVEN uploads that declare 6 MB each and send nothing (together over the budget)
    stalled = [_upload(edge.url, DECLARED) for _ in range(STALLED)]
    # WHEN small POSTs come meanwhile THEN they are answered at once
    started = time.monotonic()
    for _ in range(3):
        response = edge.client.post("/echo", content=b"small", headers=TEXT, timeout=5)
        assert response.status_code == 200
        assert response.json()["event"]["body"] == "small"
    # a body holds budget once its bytes arrive; an answered one gives it back just after
    # sending its answer, which the client may read first
    assert _eventually(lambda: budget.available == budget.limit, 1)
    # AND after the deadline each stalled upload is answered 408 and its connection closed
    for sock in stalled:
        _assert_timed_out(sock)
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9
    assert budget.available == budget.limit


def test_small_bodies_pass_large_trickling_ones_that_do_not_fit(edge: RunningEdge) -> None:
    budget = edge.app.budget
    budget.reserve_after = 60  # the large one's turn is kept later (tests/edge: test_edge_limits)
    try:
        # GIVEN five 6 MB uploads that sent one byte: four hold the budget, one waits for it
        trickling = [_upload(edge.url, DECLARED, b"x") for _ in range(STALLED)]
        held = (STALLED - 1) * HELD
        assert _eventually(lambda: budget.available == budget.limit - held)
        # WHEN small POSTs come THEN they go ahead of the waiting one, which does not fit
        for _ in range(3):
            response = edge.client.post("/echo", content=b"small", headers=TEXT, timeout=5)
            assert response.status_code == 200
        # AND every trickling upload is answered 408 (the waiting one after its own deadline,
        # counted from its turn), and all the budget comes back
        for sock in trickling:
            _assert_timed_out(sock)
        assert budget.available == budget.limit
    finally:
        budget.reserve_after = RESERVE_AFTER_SECONDS


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_chunked_body_holds_budget_as_its_bytes_arrive(edge: RunningEdge) -> None:
    budget = edge.app.budget
    headers = "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
    # GIVEN a chunked upload that sent 10 bytes, and another that sent nothing
    growing = _open(edge.url, "/faulty/size", headers, _chunk(b"x" * 10))
    stalled = _open(edge.url, "/faulty/size", headers)
    # THEN it holds one step of the budget (the README's 1 MiB, and its 1,398,104 characters of
    # base64), not the most Lambda could take
    assert _eventually(lambda: budget.available == budget.limit - 2_446_680)
    # WHEN 1.5 MiB has arrived THEN it holds two steps
    more = b"y" * (CHUNKED_STEP // 2)
    growing.sendall(_chunk(more) * 3)
    assert _eventually(lambda: budget.available == budget.limit - 2 * 1_048_576 - 2_796_204)
    # AND when it ends the function gets it all, and the budget is back
    growing.sendall(b"0\r\n\r\n")
    assert _response(growing)[::2] == (200, f"{10 + 3 * len(more)} False".encode())
    growing.close()
    # AND the stalled one is answered 408 after the deadline
    _assert_timed_out(stalled)
    assert budget.available == budget.limit


@pytest.fixture(scope="module")
def served() -> Iterator[SubprocessEdge]:
    env = {"LUCID_EDGE_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    with subprocess_edge(env, workers=1, template=FIXTURES / "template.yaml") as running:
        yield running


def test_lucid_serve_answers_a_stalled_body_408_and_serves_others(served: SubprocessEdge) -> None:
    # GIVEN `lucid serve` with a 2 s body deadline, and stalled 6 MB uploads
    stalled = [_upload(served.url, DECLARED, b"x") for _ in range(STALLED)]
    # WHEN a small POST comes THEN it is answered
    with served.client() as client:
        response = client.post("/echo", content=b"small", headers=TEXT, timeout=5)
        assert response.status_code == 200
    # AND the stalled ones are answered 408, connection closed
    for sock in stalled:
        _assert_timed_out(sock)
