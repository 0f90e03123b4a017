"""The breaker state stores: Redis and in-process keep the same contract; Redis down degrades."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from lucid.config import Settings
from lucid.proxy import BreakerState, FallbackStore, LocalBreakerStore, RedisBreakerStore
from lucid.proxy.breaker import OutcomeWindow
from lucid.store.redis_client import build_redis
from lucid_edge.local import free_port


@pytest.fixture(params=["redis", "local"])
def store(
    request: pytest.FixtureRequest, redis_client: redis.Redis
) -> RedisBreakerStore | LocalBreakerStore:
    return RedisBreakerStore(redis_client) if request.param == "redis" else LocalBreakerStore()


def test_store_contract(store: RedisBreakerStore | LocalBreakerStore) -> None:
    # closed: nothing to probe
    assert store.read("b").state is BreakerState.CLOSED
    assert store.acquire_probe("b", 1, 1000).state is BreakerState.CLOSED
    # trip: open, and a second (non-forced) trip keeps the first open period
    opened = store.trip("b", 200, force=False)
    assert opened.state is BreakerState.OPEN
    assert 0 < opened.open_ms <= 200
    assert store.trip("b", 5000, force=False).open_ms <= 200
    still_open = store.acquire_probe("b", 1, 1000)
    assert (still_open.state, still_open.granted) == (BreakerState.OPEN, False)
    assert 0 < still_open.wait_ms <= 200
    # half-open: one probe slot, and a late non-forced trip changes nothing
    time.sleep(0.25)
    assert store.read("b").state is BreakerState.HALF_OPEN
    assert store.trip("b", 5000, force=False).state is BreakerState.HALF_OPEN
    assert store.acquire_probe("b", 1, 1000).granted
    refused = store.acquire_probe("b", 1, 1000)
    assert (refused.state, refused.granted) == (BreakerState.HALF_OPEN, False)
    assert 0 < refused.wait_ms <= 1000
    # a failed probe re-opens (forced), a successful one closes
    assert store.trip("b", 5000, force=True).open_ms > 200
    store.close("b")
    assert store.read("b").state is BreakerState.CLOSED


def test_probe_slots_free_themselves_after_a_probe_timeout(
    store: RedisBreakerStore | LocalBreakerStore,
) -> None:
    store.trip("b", 1, force=True)
    time.sleep(0.01)
    assert store.acquire_probe("b", 1, 50).granted
    assert not store.acquire_probe("b", 1, 50).granted
    time.sleep(0.06)  # the probe's instance died without an answer
    assert store.acquire_probe("b", 1, 50).granted


@pytest.fixture
def dead_redis() -> Iterator[redis.Redis]:
    client = build_redis(Settings(REDIS_URI=f"redis://127.0.0.1:{free_port()}/0"))
    yield client
    client.close()


def test_fallback_store_decides_locally_when_redis_is_down(dead_redis: redis.Redis) -> None:
    fallback = FallbackStore(RedisBreakerStore(dead_redis), LocalBreakerStore())
    fallback.RETRY_REDIS_AFTER_SECONDS = 0  # try Redis on every call in this test
    assert fallback.trip("b", 1, force=False).state is BreakerState.OPEN
    time.sleep(0.01)
    assert fallback.read("b").state is BreakerState.HALF_OPEN
    assert fallback.acquire_probe("b", 1, 1000).granted
    fallback.close("b")
    assert fallback.read("b").state is BreakerState.CLOSED


def test_fallback_store_without_redis_is_the_local_store() -> None:
    fallback = FallbackStore(None, LocalBreakerStore())
    fallback.trip("b", 1000, force=False)
    assert fallback.read("b").state is BreakerState.OPEN


def test_window_stays_bounded_and_keeps_counting() -> None:
    window = OutcomeWindow(60, time.monotonic)
    for _ in range(10_000):
        window.add(True)
    window.add(False)
    assert window.counts() == (10_000, 9_999)
    # AND the call that falls out is the oldest: a success going leaves every failure counted
    successes_first = OutcomeWindow(60, time.monotonic)
    successes_first.add(False)
    for _ in range(9_999):
        successes_first.add(True)
    successes_first.add(True)
    assert successes_first.counts() == (10_000, 10_000)
