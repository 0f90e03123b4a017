"""Token buckets shared through a file: what one process takes, another cannot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid_edge.model import Throttle
from lucid_edge.throttle import Buckets, create_bucket_file


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
