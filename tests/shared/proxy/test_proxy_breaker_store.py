"""The breaker state stores: Redis and in-process keep the same contract; Redis down degrades."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis

from lucid.config import Settings
from lucid.proxy import BreakerState, FallbackStore, LocalBreakerStore, RedisBreakerStore
from lucid.proxy.breaker import OutcomeWindow
from lucid.proxy.breaker_store import SharedState
from lucid.store import resp
from lucid.store.redis_client import build_redis
from lucid_edge.local import EmbeddedRedis, free_port
from tests.shared.ratelimit.helpers import RecordList


@pytest.fixture(params=["redis", "local"])
def store(
    request: pytest.FixtureRequest, store_redis: resp.Redis
) -> RedisBreakerStore | LocalBreakerStore:
    return RedisBreakerStore(store_redis) if request.param == "redis" else LocalBreakerStore()


def test_store_contract(store: RedisBreakerStore | LocalBreakerStore) -> None:
    # closed: nothing to probe
    assert store.read("b").state is BreakerState.CLOSED
    assert store.acquire_probe("b", 1, 1000).state is BreakerState.CLOSED
    # trip: open, and a second (non-forced) trip keeps the first open period, saying that it
    # opened nothing (so its instance neither logs nor counts an opening)
    first = store.trip("b", 200, force=False)
    assert (first.shared.state, first.opened) == (BreakerState.OPEN, True)
    assert 0 < first.shared.open_ms <= 200
    second = store.trip("b", 5000, force=False)
    assert (second.shared.state, second.opened) == (BreakerState.OPEN, False)
    assert 0 < second.shared.open_ms <= 200
    still_open = store.acquire_probe("b", 1, 1000)
    assert (still_open.state, still_open.granted) == (BreakerState.OPEN, False)
    assert 0 < still_open.wait_ms <= 200
    # half-open: one probe slot, and a late non-forced trip changes nothing
    time.sleep(0.25)
    assert store.read("b").state is BreakerState.HALF_OPEN
    assert store.trip("b", 5000, force=False) == (SharedState(BreakerState.HALF_OPEN), False)
    assert store.acquire_probe("b", 1, 10_000).granted
    refused = store.acquire_probe("b", 1, 10_000)
    assert (refused.state, refused.granted) == (BreakerState.HALF_OPEN, False)
    # ...and the refused call waits for the slot's remaining time (Retry-After), not a moment
    assert 5_000 < refused.wait_ms <= 10_000
    # a failed probe re-opens (forced), a successful one closes
    reopened = store.trip("b", 5000, force=True)
    assert reopened.opened
    assert reopened.shared.open_ms > 200
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
def dead_redis() -> Iterator[resp.Redis]:
    client = build_redis(Settings(REDIS_URI=f"redis://127.0.0.1:{free_port()}/0"))
    yield client
    client.close()


def test_fallback_store_decides_locally_when_redis_is_down(dead_redis: resp.Redis) -> None:
    fallback = FallbackStore(RedisBreakerStore(dead_redis), LocalBreakerStore())
    fallback.RETRY_REDIS_AFTER_SECONDS = 0  # try Redis on every call in this test
    assert fallback.trip("b", 1, force=False) == (SharedState(BreakerState.OPEN, 1), True)
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


def test_after_a_redis_error_the_store_stays_local_for_its_retry_period(
    redis_client: redis.Redis, store_redis: resp.Redis, redis_server: EmbeddedRedis
) -> None:
    # GIVEN another instance's trip in Redis, and an instance whose Redis calls time out once
    # (CLIENT PAUSE holds every client's command for 300 ms; this client waits 50 ms)
    RedisBreakerStore(store_redis).trip("b", 10_000, force=True)
    paused = build_redis(Settings(REDIS_URI=redis_server.uri, REDIS_TIMEOUT_MS=50))
    fallback = FallbackStore(RedisBreakerStore(paused), LocalBreakerStore())
    fallback.RETRY_REDIS_AFTER_SECONDS = 1.5
    try:
        redis_client.execute_command("CLIENT", "PAUSE", 300)
        # WHEN it reads the breaker: the timeout makes it decide alone (no trip known locally)
        assert fallback.read("b").state is BreakerState.CLOSED
        time.sleep(0.4)  # Redis answers again
        # THEN for its retry period it does not ask Redis again (one timeout per period, not
        # one per call)...
        assert fallback.read("b").state is BreakerState.CLOSED
        # ...and after it, Redis's state is read again
        time.sleep(1.2)
        assert fallback.read("b").state is BreakerState.OPEN
    finally:
        paused.close()


def test_redis_being_down_is_warned_once_per_period_not_per_call(
    dead_redis: resp.Redis,
) -> None:
    # GIVEN Redis down, and a store that tries it on every call
    fallback = FallbackStore(RedisBreakerStore(dead_redis), LocalBreakerStore())
    fallback.RETRY_REDIS_AFTER_SECONDS = 0
    breaker_log, lines = logging.getLogger("lucid.proxy.breaker"), RecordList()
    breaker_log.addHandler(lines)
    try:
        # WHEN every operation fails over to the local store
        fallback.read("b")
        fallback.trip("b", 1000, force=False)
        fallback.acquire_probe("b", 1, 1000)
        fallback.close("b")
    finally:
        breaker_log.removeHandler(lines)
    # THEN the operator reads one warning, naming the error's class only
    assert [(r.levelno, r.getMessage()) for r in lines.records] == [
        (
            logging.WARNING,
            "breaker state: Redis unavailable, this instance decides alone: ConnectionError",
        )
    ]


@pytest.mark.parametrize("operation", ["acquire_probe", "trip", "close"])
def test_a_redis_error_in_any_operation_is_warned(dead_redis: resp.Redis, operation: str) -> None:
    # GIVEN an instance whose first contact with Redis is this operation (a half-open breaker
    # asks for a probe slot, a healthy one trips or closes), and Redis is down
    fallback = FallbackStore(RedisBreakerStore(dead_redis), LocalBreakerStore())
    breaker_log, lines = logging.getLogger("lucid.proxy.breaker"), RecordList()
    breaker_log.addHandler(lines)
    try:
        calls = {
            "acquire_probe": lambda: fallback.acquire_probe("b", 1, 1000),
            "trip": lambda: fallback.trip("b", 1000, force=False),
            "close": lambda: fallback.close("b"),
        }
        calls[operation]()
    finally:
        breaker_log.removeHandler(lines)
    # THEN the operator is told, as for a failed read
    assert [r.getMessage() for r in lines.records] == [
        "breaker state: Redis unavailable, this instance decides alone: ConnectionError"
    ]
