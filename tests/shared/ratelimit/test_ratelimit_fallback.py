"""Redis unavailable: fail open to a per-instance limiter (logged, counted) or closed with 503."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from lucid.config import Settings
from lucid.errors import PROBLEM_CONTENT_TYPE
from lucid.observability import flush_metrics
from lucid.ratelimit import RateLimiter
from lucid.ratelimit.memory import InMemoryLimiter
from lucid.store.redis_client import build_redis
from lucid_edge.local import EmbeddedRedis, free_port
from tests.shared.ratelimit.helpers import RecordList, function_app, invoke
from tests.utils.layer_redis import refused_uri
from tests.utils.tied import start_redis

LIMITS: dict[str, Any] = {"RATE_LIMIT_ENABLED": True, "RATE_LIMIT_PUBLIC": 3}


def limiter_on(uri: str, retry_seconds: float = 5.0, **settings: Any) -> RateLimiter:
    """A limiter with the production client settings (50 ms timeouts) on `uri`."""
    config = Settings(REDIS_URI=uri, **{"REDIS_TIMEOUT_MS": 50, **LIMITS, **settings})
    return RateLimiter(build_redis(config), config, retry_seconds=retry_seconds)


def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """Sum of each metric in the EMF lines printed by the next flush."""
    flush_metrics()
    totals: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            values = record[metric["Name"]]
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                values if isinstance(values, list) else [values]
            )
    return totals


@pytest.fixture
def clean_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    flush_metrics()  # whatever earlier tests left behind
    capsys.readouterr()


class SilentRedis:
    """A TCP server that accepts connections and never answers (a hung Redis), counting the
    connections it accepted and the bytes it was sent."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.uri = f"redis://127.0.0.1:{self._server.getsockname()[1]}/0"
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._received = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def traffic(self) -> tuple[int, int]:
        """(connections accepted, bytes received) once they stop changing for 0.2 s (the
        threads counting them may lag behind on a loaded machine), within 10 s."""
        seen = self._traffic()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self._traffic()
            if now == seen:
                break
            seen = now
        return seen

    def _traffic(self) -> tuple[int, int]:
        with self._lock:
            return len(self._connections), self._received

    def _accept(self) -> None:
        while True:
            try:
                connection = self._server.accept()[0]
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._received += len(data)

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for connection in self._connections:
                connection.close()


@pytest.fixture
def silent_redis() -> Iterator[SilentRedis]:
    """A hung Redis (see SilentRedis)."""
    server = SilentRedis()
    yield server
    server.close()


@pytest.mark.usefixtures("clean_metrics")
def test_redis_down_from_the_start_fails_open_to_a_limiter_that_still_limits(
    ratelimit_log: RecordList, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a limiter whose Redis port is closed
    limiter = limiter_on(f"redis://127.0.0.1:{free_port()}/0")
    # WHEN 5 requests come from one IP
    decisions = [limiter.check(limiter.policies.public, "198.51.100.7") for _ in range(5)]
    # THEN the in-memory limiter applies the same quota
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert {d.source for d in decisions} == {"memory"}
    # AND one warning (not one per request) names the fallback, and each decision is counted
    warnings = [r.getMessage() for r in ratelimit_log.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "ConnectionError" in warnings[0]
    assert "in memory" in warnings[0]
    assert emitted_metrics(capsys) == {"RateLimitFallback": 5}


def test_a_hung_redis_costs_one_timeout_then_none(silent_redis: SilentRedis) -> None:
    limiter = limiter_on(silent_redis.uri)
    started = time.perf_counter()
    first = limiter.check(limiter.policies.public, "198.51.100.7")
    first_took = time.perf_counter() - started
    after_first = silent_redis.traffic()
    later = [limiter.check(limiter.policies.public, "198.51.100.8") for _ in range(20)]
    assert first.allowed
    assert first.source == "memory"
    assert first_took < 0.5  # REDIS_TIMEOUT_MS=50 bounds it; never a hang
    # The one check that waited reached the hung Redis (a connection and its command) ...
    assert after_first[0] >= 1
    assert after_first[1] > 0
    # ... and while the circuit is open nobody waits for Redis: the 20 checks after it are
    # decided in memory and send it nothing, not even a new connection (counted, not timed:
    # a time bound failed at a load average of 13, where 20 in-memory checks took 0.29 s)
    assert {d.source for d in later} == {"memory"}
    assert silent_redis.traffic() == after_first


@pytest.mark.usefixtures("clean_metrics")
def test_redis_stopped_mid_test_then_back_is_used_again(
    own_redis: EmbeddedRedis, ratelimit_log: RecordList
) -> None:
    limiter = limiter_on(own_redis.uri, retry_seconds=0.3)
    public = limiter.policies.public
    # GIVEN two requests counted in Redis
    assert [limiter.check(public, "198.51.100.7").source for _ in range(2)] == ["redis"] * 2
    # WHEN Redis stops
    own_redis.stop()
    during = [limiter.check(public, "198.51.100.7") for _ in range(4)]
    # THEN the instance keeps limiting on its own (its memory starts with a full bucket)
    assert [d.allowed for d in during] == [True, True, True, False]
    assert {d.source for d in during} == {"memory"}
    # WHEN Redis is back on the same address and the retry pause is over
    with start_redis(port=own_redis.port) as restarted:
        time.sleep(0.35)
        after = limiter.check(public, "198.51.100.7")
        # THEN decisions come from Redis again (a fresh server: a fresh bucket)
        assert (after.source, after.allowed, after.remaining) == ("redis", True, 2)
        assert limiter.check(public, "198.51.100.7").remaining == 1
        with redis.Redis.from_url(restarted.uri) as client:
            assert client.pttl("lucid:local:rl:public:198.51.100.7") > 0
    # AND the operator reads that once, not once per decision since
    messages = [r.getMessage() for r in ratelimit_log.records]
    assert sum("answers again" in message for message in messages) == 1


def test_fail_closed_answers_503_problem_never_500(ratelimit_log: RecordList) -> None:
    limiter = limiter_on(f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_FAIL_MODE="closed")
    handler = function_app(limiter)
    for _ in range(2):
        status, headers, body = invoke(handler, "GET", "/items")
        assert status == 503
        assert headers["content-type"] == PROBLEM_CONTENT_TYPE
        assert 1 <= int(headers["retry-after"]) <= 5
        assert body["status"] == 503
        assert body["type"].endswith("/service-unavailable")
    assert invoke(handler, "POST", "/auth/login", body={"address": "T1"})[0] == 503
    assert "503" in ratelimit_log.records[0].getMessage()


def test_fail_closed_says_when_redis_refused_the_credentials(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, ratelimit_log: RecordList
) -> None:
    # GIVEN RATE_LIMIT_FAIL_MODE=closed and a REDIS_URI whose password Redis refuses
    with refused_uri(redis_client, redis_server.uri) as uri:
        handler = function_app(limiter_on(uri, RATE_LIMIT_FAIL_MODE="closed"))
        # WHEN requests come, the first trying Redis, the next within the retry period
        answers = [invoke(handler, "GET", "/items") for _ in range(2)]
    # THEN each is the 503 saying Redis refused the credentials, not that it is unavailable
    assert [(status, body["detail"]) for status, _, body in answers] == [
        (503, "rate limiting cannot count: Redis refused the credentials")
    ] * 2
    assert (
        "Redis refused the credentials for rate limiting" in ratelimit_log.records[0].getMessage()
    )


def test_fail_closed_recovers_when_redis_comes_back(own_redis: EmbeddedRedis) -> None:
    limiter = limiter_on(own_redis.uri, retry_seconds=0.2, RATE_LIMIT_FAIL_MODE="closed")
    handler = function_app(limiter)
    own_redis.stop()
    assert invoke(handler, "GET", "/items")[0] == 503
    with start_redis(port=own_redis.port):
        time.sleep(0.25)
        status, headers, _ = invoke(handler, "GET", "/items")
        assert status == 200
        assert headers["x-ratelimit-remaining"] == "2"


def test_the_fallback_gives_the_same_answers_as_redis(own_redis: EmbeddedRedis) -> None:
    shared = limiter_on(own_redis.uri)
    alone = limiter_on(f"redis://127.0.0.1:{free_port()}/0")

    def run(limiter: RateLimiter) -> list[tuple[bool, int, int]]:
        checks = [limiter.check(limiter.policies.public, "198.51.100.7") for _ in range(5)]
        # a refusal waits for the window's end plus 20 s (60 s / 3) into the next one
        return [
            (d.allowed, d.remaining, d.retry_after - d.reset_seconds if d.retry_after else 0)
            for d in checks
        ]

    assert (
        run(shared)
        == run(alone)
        == [
            (True, 2, 0),
            (True, 1, 0),
            (True, 0, 0),
            (False, 0, 20),
            (False, 0, 20),
        ]
    )


def test_fallback_memory_stays_bounded_under_many_callers() -> None:
    clock = [1_000_000]
    memory = InMemoryLimiter(max_keys=100, clock_us=lambda: clock[0])
    for n in range(1000):
        assert memory.check([f"ip-{n}"], [(5, 12_000_000)])[0].admitted
    assert len(memory) <= 100
    # the most recent callers are still counted
    assert memory.check(["ip-999"], [(5, 12_000_000)])[0].remaining == 3
    # entries whose bucket is full again are the first to go
    clock[0] += 61_000_000
    memory.check(["late"], [(5, 12_000_000)])
    for n in range(100):
        memory.check([f"new-{n}"], [(5, 12_000_000)])
    assert len(memory) <= 100


def test_a_full_fallback_table_drops_callers_whose_counts_expired_before_current_ones() -> None:
    # GIVEN 2 per 10 s and room for 10 callers; "a" and eight others seen in window 0
    window, limits = 10_000_000, [(2, 10_000_000)]
    clock = [0]
    memory = InMemoryLimiter(max_keys=10, clock_us=lambda: clock[0])
    for key in ["a", *(f"old-{n}" for n in range(8))]:
        memory.check([key], limits)
    # WHEN, two windows later (the others' counts no longer matter), "a" spends its quota
    clock[0] = 2 * window
    assert all(memory.check(["a"], limits)[0].admitted for _ in range(2))
    # ...and two new callers fill the table past its size
    memory.check(["new-1"], limits)
    memory.check(["new-2"], limits)
    # THEN the expired callers went, not "a" (the oldest key): it is still refused
    assert not memory.check(["a"], limits)[0].admitted


def test_a_fallback_refusal_charges_none_of_the_request_keys() -> None:
    # GIVEN a request checked against two keys (1 and 5 per 10 s), the first already spent
    memory = InMemoryLimiter(clock_us=lambda: 0)
    limits = [(1, 10_000_000), (5, 10_000_000)]
    assert memory.check(["tight", "loose"], limits)[0].admitted
    # WHEN the next is refused by the first key
    assert [v.admitted for v in memory.check(["tight", "loose"], limits)] == [False, True]
    # THEN the second key was not charged for it: 5 - 1 - this one
    assert memory.check(["loose"], limits[1:])[0].remaining == 3


def test_a_fallback_table_at_its_size_keeps_every_caller() -> None:
    # GIVEN room for 10 callers, and exactly 10 in one window, the first at its quota
    memory = InMemoryLimiter(max_keys=10, clock_us=lambda: 0)
    limits = [(1, 10_000_000)]
    for key in [f"ip-{n}" for n in range(10)]:
        assert memory.check([key], limits)[0].admitted
    # THEN none was dropped: the first is still refused
    assert not memory.check(["ip-0"], limits)[0].admitted


def test_a_caller_cannot_double_its_burst_across_a_window_boundary() -> None:
    # GIVEN 10 per 10 s, all 10 spent just before the window ends (in-memory clock)
    clock = [9_900_000]
    memory = InMemoryLimiter(clock_us=lambda: clock[0])
    limits = [(10, 10_000_000)]
    assert all(memory.check(["k"], limits)[0].admitted for _ in range(10))
    # WHEN the next window is 2 s old, the previous one still weighs 8 of the 10
    clock[0] = 12_000_000
    verdicts = [memory.check(["k"], limits)[0] for _ in range(3)]
    # THEN only 2 more pass, and the refusal says when the weight has shrunk enough (at 13 s)
    assert [v.admitted for v in verdicts] == [True, True, False]
    assert verdicts[2].retry_us == 1_000_000
    clock[0] = 13_000_000
    assert memory.check(["k"], limits)[0].admitted
