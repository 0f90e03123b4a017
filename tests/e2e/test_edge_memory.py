"""Request bodies take bounded memory however many arrive at once (issue 11).

`lucid serve --workers 1` serves tests/edge/fixtures/template.yaml in a subprocess (so its one
process is the worker), and the test reads that process's peak resident memory (VmHWM, reset
through /proc/PID/clear_refs before each load) while many large requests arrive together.
Measured (two runs each): before issue 11, when every body was read whole as it arrived, the
worker peaked 235-256 MB above its resident size for the 9.9 MB bodies refused 401 below, and
281-290 MB for the 5 MB bodies waiting on a slow function; after it, 2 MB and 50 MB.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge
from tests.edge.harness import FIXTURES

pytestmark = pytest.mark.e2e
CONCURRENT = 30
MB = 1024 * 1024
# Generous: the body budget is 64 MiB per worker, sized for the bytes read and their copy in the
# event; the function's own work on a body comes on top.
BOUND_MB = 150


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    with subprocess_edge({}, workers=1, template=FIXTURES / "template.yaml") as running:
        yield running


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def peak_growth_mb(
    edge: SubprocessEdge, path: str, body: bytes, headers: dict[str, str]
) -> tuple[float, list[int]]:
    """How far above its resident memory the worker peaks while CONCURRENT requests of `body`
    arrive at once; and their statuses."""
    pid = edge.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kb(pid, "VmRSS")
    statuses: list[int] = []
    start = threading.Barrier(CONCURRENT)

    def send() -> None:
        with edge.client(timeout=60) as client:
            start.wait()
            statuses.append(client.post(path, content=body, headers=headers).status_code)

    threads = [threading.Thread(target=send) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return (_status_kb(pid, "VmHWM") - before) / 1024, statuses


def test_large_bodies_without_the_identity_source_are_refused_unread(edge: SubprocessEdge) -> None:
    # WHEN 30 clients each POST 9.9 MB to a protected route without Authorization
    body = b"\x00" * int(9.9 * MB)
    growth, statuses = peak_growth_mb(edge, "/protected/size", body, {})
    # THEN every one is refused 401, and the bodies never pile up in the worker
    assert statuses == [401] * CONCURRENT
    assert growth < BOUND_MB, f"worker peaked {growth:.0f} MB above its resident size"


def test_many_large_bodies_at_once_hold_a_bounded_total(edge: SubprocessEdge) -> None:
    # WHEN 30 clients each POST a 5 MB text body to a function that takes 0.25 s over each
    body = b"x" * (5 * MB)
    headers = {"Content-Type": "text/plain"}
    growth, statuses = peak_growth_mb(edge, "/sink/slowsize", body, headers)
    # THEN all are served, a few at a time, within a bounded total
    assert statuses == [200] * CONCURRENT
    assert growth < BOUND_MB, f"worker peaked {growth:.0f} MB above its resident size"
