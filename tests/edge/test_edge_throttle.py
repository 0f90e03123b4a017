"""Token buckets shared through a file: what one process takes, another cannot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid_edge.model import Throttle
from lucid_edge.throttle import Buckets, create_bucket_file
from tests.utils.descriptors import descriptors_on


@pytest.fixture
def bucket_file() -> Iterator[Path]:
    path = create_bucket_file(2)
    yield path
    path.unlink()


def test_burst_then_refusal_shared_by_two_openers(bucket_file: Path) -> None:
    throttles = [Throttle(burst=3, rate=0.001), None]
    first, second = Buckets(bucket_file, throttles), Buckets(bucket_file, throttles)
    try:
        taken = [first.take(0), second.take(0), first.take(0), second.take(0), first.take(0)]
        assert taken == [True, True, True, False, False]
        assert all(first.take(1) for _ in range(100))  # no throttling configured
    finally:
        first.close()
        second.close()


def test_tokens_refill_at_the_rate(bucket_file: Path) -> None:
    buckets = Buckets(bucket_file, [Throttle(burst=1, rate=20.0), None])
    try:
        assert buckets.take(0)
        assert not buckets.take(0)
        time.sleep(0.06)
        assert buckets.take(0)
    finally:
        buckets.close()


def test_a_file_too_small_is_refused(bucket_file: Path) -> None:
    with pytest.raises(ValueError, match="too small"):
        Buckets(bucket_file, [None] * 3)


_OTHER_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lucid_edge.model import Throttle
    from lucid_edge.throttle import Buckets

    buckets = Buckets(Path(sys.argv[1]), [Throttle(burst=3, rate=1e-9), None])
    print(" ".join(str(buckets.take(0)) for _ in range(3)), flush=True)
    """
)


def test_a_bucket_is_shared_with_another_worker_process(bucket_file: Path) -> None:
    # GIVEN a route of burst 3 refilled once in ~30 years, and this worker took one request
    buckets = Buckets(bucket_file, [Throttle(burst=3, rate=1e-9), None])
    try:
        assert buckets.take(0)
        # WHEN another worker process takes three from the same file
        other = subprocess.run(
            [sys.executable, "-c", _OTHER_WORKER, str(bucket_file)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        # THEN it gets the two left (it is not kept waiting by this worker's lock), then 429
        assert other.stdout == "True True False\n"
        assert not buckets.take(0)
    finally:
        buckets.close()


def test_each_route_has_its_own_bucket_and_a_burst_of_one_answers_its_first_request() -> None:
    # GIVEN two routes throttled at burst 1 and 2, at a rate so slow no token comes back during
    # the test
    path = create_bucket_file(2)
    buckets = Buckets(path, [Throttle(burst=1, rate=1e-12), Throttle(burst=2, rate=1e-12)])
    try:
        # WHEN requests to both come in turn
        taken = [buckets.take(route) for route in (0, 1, 0, 1, 0, 1)]
        # THEN the first route's first request passes (a bucket starts full) and its next ones
        # are throttled, while the second route has its own two requests
        assert taken == [True, True, False, True, False, False]
    finally:
        buckets.close()
        path.unlink()


def test_a_stage_without_routes_and_closed_buckets_leave_no_descriptor_open() -> None:
    # WHEN an edge with no routes creates, opens and closes its buckets, and one whose file
    # turns out too small is refused (a worker builds its buckets at each start)
    path = create_bucket_file(0)
    try:
        buckets = Buckets(path, [])
        buckets.close()
        with pytest.raises(ValueError, match="too small"):
            Buckets(path, [None, None])
        # THEN no descriptor of the file is left open
        assert descriptors_on(path) == 0
    finally:
        path.unlink()


_RACER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lucid_edge.model import Throttle
    from lucid_edge.throttle import Buckets

    buckets = Buckets(Path(sys.argv[1]), [Throttle(burst=int(sys.argv[2]), rate=1e-9)])
    print("ready", flush=True)
    sys.stdin.readline()  # every racer starts at once
    print(sum(buckets.take(0) for _ in range(int(sys.argv[2]))), flush=True)
    """
)


def test_workers_taking_at_the_same_time_never_get_more_than_the_burst() -> None:
    # GIVEN a route of burst 20,000 (no refill during the test) and two worker processes
    burst = 20_000
    path = create_bucket_file(1)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(path), str(burst)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline() == "ready\n"
        # WHEN each sends the whole burst's worth of requests at the same moment
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        answered = [int(racer.communicate(timeout=60)[0]) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
            racer.wait()
        path.unlink()
    # THEN exactly the burst is let through between them, the rest is 429
    assert sum(answered) == burst
