"""The circuit breaker through the real proxy, real backends and the real Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import redis

from lucid.config import Settings
from lucid.errors import BadGatewayError, GatewayTimeoutError, LucidError, ServiceUnavailableError
from lucid.proxy import BreakerState, Permit, Proxy, build_proxy
from lucid.proxy.breaker import BreakerPolicy, CircuitBreaker, OutcomeWindow
from lucid.proxy.breaker_store import LocalBreakerStore
from lucid.store.redis_client import build_redis
from lucid_edge.local import free_port
from tests.shared.proxy.conftest import proxy_request, proxy_settings
from tests.shared.proxy.proxy_backends import BackendServer, unaccepting_listener
from tests.utils.logs import logged_lines
from tests.utils.metrics import emitted, flushed

MakeProxy = Callable[..., Proxy]


def trip_breaker(proxy: Proxy, backend: BackendServer) -> None:
    """Open the blockchain breaker: four failures are BREAKER_MIN_CALLS at 100 %, then 503."""
    backend.mode = "fail"
    for _ in range(4):
        assert proxy.forward(proxy_request()).status == 500
    with pytest.raises(ServiceUnavailableError):
        proxy.forward(proxy_request())


def breaker_keys(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(client.pttl(k)) for k in client.scan_iter("lucid:local:breaker:*")}


def test_closed_open_half_open_closed_with_exact_counts(
    backend: BackendServer, make_proxy: MakeProxy, redis_client: redis.Redis
) -> None:
    # GIVEN a failing backend and a breaker that opens at 50 % failures over at least 4 calls
    backend.mode = "fail"
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    breaker = proxy.breakers["blockchain"]
    # WHEN 3 calls fail, the breaker stays closed and the 500s pass through
    for _ in range(3):
        assert proxy.forward(proxy_request()).status == 500
    assert breaker.state is BreakerState.CLOSED
    assert breaker_keys(redis_client) == {}
    # WHEN the 4th fails, it opens: shared in Redis, every key with a TTL
    assert proxy.forward(proxy_request()).status == 500
    # (mypy keeps the state the assert above narrowed: it cannot see the call change it)
    assert breaker.state is BreakerState.OPEN  # type: ignore[comparison-overlap]
    keys = breaker_keys(redis_client)
    assert set(keys) == {
        "lucid:local:breaker:blockchain:open",
        "lucid:local:breaker:blockchain:half",
    }
    assert all(ttl > 0 for ttl in keys.values())
    # THEN calls are answered 503 with Retry-After at once, without touching the backend
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as raised:
        proxy.forward(proxy_request())
    assert time.monotonic() - started < 0.05
    assert raised.value.headers == {"Retry-After": "1"}
    assert raised.value.extensions == {"backend": "blockchain", "breaker": "open"}
    assert len(backend.received) == 4
    # WHEN the open period ends and the backend recovered, one probe closes it
    time.sleep(1.05)
    backend.mode = "ok"
    assert proxy.forward(proxy_request()).status == 200
    assert breaker.state is BreakerState.CLOSED
    assert breaker_keys(redis_client) == {}
    assert len(backend.received) == 5


def test_a_failed_probe_opens_again(backend: BackendServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    trip_breaker(proxy, backend)
    time.sleep(1.05)
    assert proxy.forward(proxy_request()).status == 500  # the probe
    assert proxy.breakers["blockchain"].state is BreakerState.OPEN
    with pytest.raises(ServiceUnavailableError):
        proxy.forward(proxy_request())
    assert len(backend.received) == 5


def test_an_answer_too_large_to_return_counts_as_the_backend_working(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN a backend whose answers are over what a Lambda result can carry
    backend.mode = "huge"
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    # WHEN more than BREAKER_MIN_CALLS of them come back
    for _ in range(5):
        with pytest.raises(BadGatewayError, match="larger than a Lambda response"):
            proxy.forward(proxy_request())
    # THEN each was the precise 502 from the backend, never the breaker's 503: it answered
    assert len(backend.received) == 5
    # AND when such an answer is a half-open breaker's probe (another instance, whose window
    # holds only failures), it closes the breaker
    tripped = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    trip_breaker(tripped, backend)
    time.sleep(1.05)
    backend.mode = "huge"
    with pytest.raises(BadGatewayError):
        tripped.forward(proxy_request())  # the probe
    backend.mode = "ok"
    assert [tripped.forward(proxy_request()).status for _ in range(2)] == [200, 200]
    assert len(backend.received) == 5 + 4 + 1 + 2


def test_flapping_backend_at_the_threshold_opens_and_below_it_does_not(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    backend.mode = "flap"  # 500, 200, 500, 200: exactly 50 %
    proxy = make_proxy(
        proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, NODE_SERVICE_URL=backend.url)
    )
    statuses = [proxy.forward(proxy_request()).status for _ in range(4)]
    assert statuses == [500, 200, 500, 200]
    assert proxy.breakers["blockchain"].state is BreakerState.OPEN
    # a 4xx is the backend working: four of them do not open the node breaker
    backend.mode, backend.status = "status", 404
    for _ in range(4):
        assert proxy.forward(proxy_request("GET", "nodes", "n")).status == 404
    assert proxy.breakers["node"].state is BreakerState.CLOSED


def test_connection_errors_and_timeouts_count_as_failures(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    backend.mode, backend.delay = "slow", 0.6
    proxy = make_proxy(
        proxy_settings(
            BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{free_port()}",
            NODE_SERVICE_URL=backend.url,
            BREAKER_MIN_CALLS=2,
            PROXY_READ_TIMEOUT_SECONDS=0.1,
        ),
        sleep=lambda _: None,
    )
    for prefix in ("chain", "nodes"):
        for _ in range(2):
            with pytest.raises(LucidError) as raised:
                proxy.forward(proxy_request("GET", prefix, "x"))
            assert raised.value.status in (502, 504)
    assert proxy.breakers["blockchain"].state is BreakerState.OPEN
    assert proxy.breakers["node"].state is BreakerState.OPEN


def test_half_open_grants_probe_slots_atomically_across_instances(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN two instances on one Redis, the breaker open and its open period over
    settings = proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url)
    first, second = make_proxy(settings), make_proxy(settings)
    backend.mode = "fail"
    for _ in range(4):
        first.forward(proxy_request())
    time.sleep(1.05)
    a, b = first.breakers["blockchain"], second.breakers["blockchain"]
    # WHEN the first takes the only probe slot
    assert a.acquire() is Permit.PROBE
    # THEN the second is refused while the probe is in flight
    with pytest.raises(ServiceUnavailableError) as raised:
        b.acquire()
    assert raised.value.extensions["breaker"] == "half_open"
    # WHEN the probe succeeds, both see the breaker closed
    a.record(Permit.PROBE, failed=False)
    assert b.acquire() is Permit.CALL


def test_after_the_breaker_closes_an_instance_counts_only_what_came_after(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN a second instance that saw 2 failures in 3 calls (below BREAKER_MIN_CALLS, 4)
    settings = proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url)
    first, second = make_proxy(settings), make_proxy(settings)
    assert second.forward(proxy_request()).status == 200
    backend.mode = "fail"
    for _ in range(2):
        assert second.forward(proxy_request()).status == 500
    # AND the first instance trips the shared breaker, which the second then answers with
    for _ in range(4):
        first.forward(proxy_request())
    with pytest.raises(ServiceUnavailableError):
        second.forward(proxy_request())
    # WHEN the backend recovers and a probe closes the breaker
    time.sleep(1.05)
    backend.mode = "ok"
    assert first.forward(proxy_request()).status == 200
    # THEN one failure on the second instance is one failure in one call since it closed, not
    # the 3rd of 4 with the failures from before the trip: it does not open the breaker again
    backend.mode = "fail"
    assert second.forward(proxy_request()).status == 500
    assert second.breakers["blockchain"].state is BreakerState.CLOSED
    backend.mode = "ok"
    assert second.forward(proxy_request()).status == 200
    # AND 1 failure in 4 calls since it closed (25 %) leaves it closed
    for _ in range(2):
        assert second.forward(proxy_request()).status == 200
    assert second.breakers["blockchain"].state is BreakerState.CLOSED
    # AND 3 in 6 (50 %) opens it: the 3 calls from before the trip count neither as calls
    # (they would dilute the rate to 3 in 9) nor as failures
    backend.mode = "fail"
    for _ in range(2):
        second.forward(proxy_request())
    # (mypy keeps the state the assert above narrowed: it cannot see the calls change it)
    assert second.breakers["blockchain"].state is BreakerState.OPEN  # type: ignore[comparison-overlap]


def trips_beside(backend: BackendServer, first: Proxy, second: Proxy) -> None:
    """`second` sees 2 failures in 3 calls (reading the shared state CLOSED at each failure),
    then `first` trips the shared breaker (the backend failing)."""
    assert second.forward(proxy_request()).status == 200
    backend.mode = "fail"
    assert [second.forward(proxy_request()).status for _ in range(2)] == [500, 500]
    for _ in range(4):
        first.forward(proxy_request())


def test_a_trip_that_finds_the_breaker_half_open_leaves_it_to_the_probe(
    backend: BackendServer, make_proxy: MakeProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two instances that read the shared state at most every 5 s on the healthy path,
    # the second having seen 2 failures in 3 calls
    settings = proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, BREAKER_SYNC_MS=5000)
    first, second = make_proxy(settings), make_proxy(settings)
    flushed()
    capsys.readouterr()
    with logged_lines() as lines:
        # AND the first trips the breaker, whose open period (1 s) then ends: half-open
        trips_beside(backend, first, second)
        time.sleep(1.05)
        # WHEN the second, still trusting its cached CLOSED, makes a 4th call that succeeds
        # (2 failures in 4 calls: the 50 % threshold)
        backend.mode = "ok"
        assert second.forward(proxy_request()).status == 200
        # THEN it does not open the breaker again: the first instance's next call is the probe,
        # which reaches the backend and closes the breaker
        assert first.forward(proxy_request()).status == 200
        assert first.breakers["blockchain"].state is BreakerState.CLOSED
        assert len(backend.received) == 3 + 4 + 1 + 1
    # AND one opening is logged and counted, not two: the second's trip opened nothing (it
    # logged "opened for -13773.3 s", the age of an open period it never had, and counted it)
    assert [line["message"] for line in lines] == [
        "breaker blockchain opened for 1.0 s",
        "breaker blockchain closed: a probe succeeded",
    ]
    flushed()
    assert emitted(capsys.readouterr().out).get("CircuitOpened") == 1


def test_a_trip_that_finds_another_instances_open_period_running_adopts_it_uncounted(
    backend: BackendServer, make_proxy: MakeProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two instances that read the shared state at most every 5 s on the healthy path and
    # open the breaker for 30 s, the second having seen 2 failures in 3 calls
    settings = proxy_settings(
        BLOCKCHAIN_SERVICE_URL=backend.url, BREAKER_SYNC_MS=5000, BREAKER_OPEN_SECONDS=30
    )
    first, second = make_proxy(settings), make_proxy(settings)
    flushed()
    capsys.readouterr()
    with logged_lines() as lines:
        # AND the first trips the breaker, whose open period is still running
        trips_beside(backend, first, second)
        # WHEN the second, still trusting its cached CLOSED, makes a 4th call that succeeds
        # (2 failures in 4 calls: the 50 % threshold) and so trips
        backend.mode = "ok"
        assert second.forward(proxy_request()).status == 200
        # THEN it adopts the first's open period: its next call is 503 without the backend
        with pytest.raises(ServiceUnavailableError) as raised:
            second.forward(proxy_request())
        assert 28 <= int(raised.value.headers["Retry-After"]) <= 30
        assert len(backend.received) == 3 + 4 + 1
    # AND one opening is logged and counted, not two (the second logged "opened for 30.0 s"
    # too, the rest of the first's period, and counted CircuitOpened again)
    assert [line["message"] for line in lines] == ["breaker blockchain opened for 30.0 s"]
    flushed()
    assert emitted(capsys.readouterr().out).get("CircuitOpened") == 1


def test_healthy_path_writes_nothing_to_redis(
    backend: BackendServer, make_proxy: MakeProxy, redis_client: redis.Redis
) -> None:
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, BREAKER_SYNC_MS=10000))
    redis_client.config_resetstat()
    for _ in range(20):
        assert proxy.forward(proxy_request()).status == 200
    stats = redis_client.info("commandstats")
    used = {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}
    for housekeeping in ("info", "config", "client", "hello"):  # connection set-up, this test
        used.pop(housekeeping, None)
    assert used == {"pttl": 1, "exists": 1}  # one cached read for twenty calls


def tripped_by_another(backend: BackendServer, make_proxy: MakeProxy, sync_ms: int) -> Proxy:
    """An instance reading the shared state at most every `sync_ms` on the healthy path, which
    read it CLOSED just before another instance tripped the shared breaker (backend failing)."""
    settings = proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, BREAKER_SYNC_MS=sync_ms)
    first, second = make_proxy(settings), make_proxy(settings)
    assert second.forward(proxy_request()).status == 200
    backend.mode = "fail"
    for _ in range(4):
        first.forward(proxy_request())
    return second


def test_a_healthy_instance_adopts_another_instances_trip_after_breaker_sync_ms(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN an instance reading the shared state at most every 200 ms on the healthy path,
    # which read it CLOSED just before another instance tripped the shared breaker
    second = tripped_by_another(backend, make_proxy, sync_ms=200)
    backend.mode = "ok"
    calls = len(backend.received)
    # THEN once BREAKER_SYNC_MS has passed the second answers 503 without calling the backend
    time.sleep(0.25)
    with pytest.raises(ServiceUnavailableError):
        second.forward(proxy_request())
    assert len(backend.received) == calls


def test_an_instance_whose_call_fails_adopts_another_instances_trip_at_once(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN an instance reading the shared state at most every 5 s on the healthy path, which
    # read it CLOSED just before another instance tripped the shared breaker
    second = tripped_by_another(backend, make_proxy, sync_ms=5000)
    # WHEN it makes, within its 5 s, a call that fails
    assert second.forward(proxy_request()).status == 500
    # THEN it has read the shared state again and answers its next call 503 without the
    # backend, though its own window (1 failure in 2 calls) is far from the threshold
    with pytest.raises(ServiceUnavailableError):
        second.forward(proxy_request())
    assert len(backend.received) == 1 + 4 + 1


def test_an_open_breaker_answers_503_without_asking_redis(
    backend: BackendServer, make_proxy: MakeProxy, redis_client: redis.Redis
) -> None:
    # GIVEN a breaker this instance tripped
    backend.mode = "fail"
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    for _ in range(4):
        proxy.forward(proxy_request())
    redis_client.config_resetstat()
    # WHEN calls arrive during the open period
    for _ in range(10):
        with pytest.raises(ServiceUnavailableError):
            proxy.forward(proxy_request())
    # THEN each is refused locally: no Redis command at all
    stats = redis_client.info("commandstats")
    used = {name.removeprefix("cmdstat_") for name in stats}
    assert used - {"info", "config", "client", "hello"} == set()


def test_without_redis_each_instance_keeps_its_own_breaker(
    backend: BackendServer, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN Redis unreachable
    dead = build_redis(Settings(REDIS_URI=f"redis://127.0.0.1:{free_port()}/0"))
    proxy = build_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url), dead)
    breaker_log = logging.getLogger("lucid.proxy.breaker")
    breaker_log.addHandler(caplog.handler)
    try:
        backend.mode = "fail"
        # WHEN the backend fails, the breaker still opens (locally), with a warning logged
        for _ in range(4):
            assert proxy.forward(proxy_request()).status == 500
        with pytest.raises(ServiceUnavailableError):
            proxy.forward(proxy_request())
        assert "Redis unavailable" in caplog.text
        # THEN it half-opens and closes locally too
        time.sleep(1.05)
        backend.mode = "ok"
        assert proxy.forward(proxy_request()).status == 200
        assert proxy.breakers["blockchain"].state is BreakerState.CLOSED
        assert len(backend.received) == 5
    finally:
        breaker_log.removeHandler(caplog.handler)
        proxy.close()
        dead.close()


def test_window_forgets_calls_older_than_its_length() -> None:
    now = [100.0]
    window = OutcomeWindow(10, lambda: now[0])
    window.add(True)
    window.add(True)
    now[0] += 5
    window.add(False)
    assert window.counts() == (3, 2)
    now[0] += 5.5
    assert window.counts() == (1, 0)


def test_retry_after_counts_down_the_open_period_then_the_probe_slot_to_the_second() -> None:
    # GIVEN an instance deciding alone (no Redis), on a clock the test moves, whose breaker
    # opens for 300 s and whose backend's forwarded request may last 299 s: a probe holds its
    # slot 300 s (299 s + PROBE_SLOT_MARGIN_SECONDS)
    now = [1000.0]
    policy = BreakerPolicy.from_settings(
        proxy_settings(BREAKER_OPEN_SECONDS=300), exchange_seconds=299.0
    )
    breaker = CircuitBreaker(
        "blockchain", policy, LocalBreakerStore(lambda: now[0]), clock=lambda: now[0]
    )

    def retry_after() -> str:
        with pytest.raises(ServiceUnavailableError) as raised:
            breaker.acquire()
        return raised.value.headers["Retry-After"]

    with logged_lines() as lines:
        for _ in range(4):
            breaker.record(breaker.acquire(), failed=True)
        # THEN a call at once is told 300 s, and 0.9 s later still 300 (299.1 rounded up)
        assert retry_after() == "300"
        now[0] = 1000.9
        assert retry_after() == "300"
        # WHEN the open period is over, one probe goes through, and a call beside it is told the
        # probe slot's 300 s, and 0.9 s later 300 again
        now[0] = 1300.0
        assert breaker.acquire() is Permit.PROBE
        assert retry_after() == "300"
        now[0] = 1300.9
        assert retry_after() == "300"
        # WHEN the probe succeeds, the breaker closes and counts afresh: three failures are
        # below BREAKER_MIN_CALLS (4), the fourth opens it again
        breaker.record(Permit.PROBE, failed=False)
        for _ in range(3):
            breaker.record(breaker.acquire(), failed=True)
        assert breaker.state is BreakerState.CLOSED
        breaker.record(breaker.acquire(), failed=True)
        assert breaker.state is BreakerState.OPEN  # type: ignore[comparison-overlap]
    # AND the log names each transition and how long the breaker stays open
    assert [line["message"] for line in lines] == [
        "breaker blockchain opened for 300.0 s",
        "breaker blockchain closed: a probe succeeded",
        "breaker blockchain opened for 300.0 s",
    ]


def test_opening_is_counted_as_a_metric(
    backend: BackendServer,
    make_proxy: MakeProxy,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend.mode = "fail"
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    flushed()  # what earlier tests recorded outside any request
    capsys.readouterr()
    for _ in range(4):
        proxy.forward(proxy_request())
    flushed()
    assert emitted(capsys.readouterr().out).get("CircuitOpened") == 1


def test_a_probe_slot_outlasts_a_probe_that_retries_its_connects(make_proxy: MakeProxy) -> None:
    # GIVEN a backend that accepts no connection, so a GET probe waits out three connect
    # timeouts of 1 s (PROXY_RETRIES=2) before it fails: over 3 s, longer than the connect and
    # read timeouts plus a second (2.3 s)
    with unaccepting_listener() as port:
        settings = proxy_settings(
            BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{port}", PROXY_CONNECT_TIMEOUT_SECONDS=1.0
        )
        first, second = make_proxy(settings), make_proxy(settings)
        breaker = first.breakers["blockchain"]
        for _ in range(4):
            breaker.record(breaker.acquire(), failed=True)
        time.sleep(1.05)  # the open period is over: the next call is the only probe
        outcome: list[BaseException] = []

        def probe() -> None:
            try:
                first.forward(proxy_request("GET"))
            except LucidError as error:
                outcome.append(error)

        prober = threading.Thread(target=probe)
        started = time.monotonic()
        prober.start()
        # WHEN another instance asks to probe while the first probe still connects
        time.sleep(max(0.0, 2.7 - (time.monotonic() - started)))
        assert prober.is_alive()
        # THEN it is refused: the first probe still holds the only slot
        with pytest.raises(ServiceUnavailableError) as raised:
            second.breakers["blockchain"].acquire()
        assert raised.value.extensions["breaker"] == "half_open"
        prober.join(timeout=10)
    assert [type(error) for error in outcome] == [GatewayTimeoutError]


def test_one_clusters_open_breaker_leaves_the_others_serving(
    backend: BackendServer, make_proxy: MakeProxy, redis_client: redis.Redis
) -> None:
    # GIVEN the blockchain cluster down and the session and node clusters up
    settings = proxy_settings(
        BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{free_port()}",
        SESSION_SERVICE_URL=backend.url,
        NODE_SERVICE_URL=backend.url,
        PROXY_RETRIES=0,
    )
    first, other = make_proxy(settings), make_proxy(settings)
    for _ in range(4):
        with pytest.raises(LucidError):
            first.forward(proxy_request("GET", "chain", "info"))
    # WHEN its breaker is open (for every instance)
    with pytest.raises(ServiceUnavailableError):
        other.forward(proxy_request("GET", "chain", "info"))
    # THEN the other clusters still answer, and only the blockchain's state is in Redis
    for prefix in ("manifests", "trust", "nodes"):
        assert other.forward(proxy_request("GET", prefix, "x")).status == 200
    assert {key.split(":")[3] for key in breaker_keys(redis_client)} == {"blockchain"}
