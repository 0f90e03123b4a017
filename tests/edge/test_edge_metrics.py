"""lucid_edge.metrics: the series the edge exports, in one process and across worker processes
(prometheus-client's multiprocess mode, as `lucid serve` runs it)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from prometheus_client.parser import text_string_to_metric_families
from uvicorn import Config

from lucid import observability
from lucid_edge import metrics as edge_metrics
from lucid_edge import metrics_workers
from lucid_edge.metrics import EdgeMetrics, FunctionLoad, MetricsPathError, check_path
from lucid_edge.model import RouteSpec
from lucid_edge.responses import TOO_MANY_REQUESTS, HttpResponse


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def value(text: bytes, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture
def metrics() -> Iterator[EdgeMetrics]:
    built = EdgeMetrics(
        lambda: {"MetaFunction": FunctionLoad(3, 2), "ProxyFunction": FunctionLoad(1, 0)},
        lambda: (5, 32),
        breaker_states=lambda: {"blockchain": "open", "node": "closed"},
    )
    yield built
    built.close()


def test_requests_are_counted_and_timed_by_route_function_and_status(metrics: EdgeMetrics) -> None:
    # GIVEN two answers of one route and one request no route matched
    started = time.perf_counter() - 0.2
    metrics.request("GET /health", "MetaFunction", 200, started)
    metrics.request("GET /health", "MetaFunction", 200, time.perf_counter())
    metrics.request(None, None, 404, time.perf_counter())
    text, content_type = metrics.exposition()
    # THEN each is counted under its labels, and the slow one lands in its latency bucket
    assert content_type.startswith("text/plain")
    labels = {"route": "GET /health", "function": "MetaFunction", "status": "200"}
    assert value(text, "lucid_requests_total", **labels) == 2
    assert value(text, "lucid_request_duration_seconds_count", **labels) == 2
    assert value(text, "lucid_request_duration_seconds_bucket", le="0.1", **labels) == 1
    assert value(text, "lucid_request_duration_seconds_bucket", le="0.25", **labels) == 2
    assert value(text, "lucid_requests_total", route="-", function="-", status="404") == 1


def test_the_functions_events_reach_their_metrics(metrics: EdgeMetrics) -> None:
    # WHEN the functions count events through the layer (as they do in every process)
    invocation = observability._InvocationMetrics(function="UsersFunction")
    token = observability._current.set(invocation)
    try:
        for name in ("RateLimitAdmitted", "RateLimitAdmitted", "RateLimited", "RateLimitFallback"):
            observability.count(name)
        observability.count("SignInSucceeded")
    finally:
        observability._current.reset(token)
    metrics.on_event("ProxyFunction", "CircuitOpened")
    metrics.on_event("ProxyFunction", "CircuitRejected")
    metrics.on_event("MetaFunction", "ColdStart")
    text, _ = metrics.exposition()
    # THEN each has its series, and an event without one of its own is counted by name
    fn = {"function": "UsersFunction"}
    assert value(text, "lucid_ratelimit_decisions_total", decision="admitted", **fn) == 2
    assert value(text, "lucid_ratelimit_decisions_total", decision="refused", **fn) == 1
    assert value(text, "lucid_ratelimit_fallbacks_total", **fn) == 1
    assert value(text, "lucid_function_events_total", event="SignInSucceeded", **fn) == 1
    assert value(text, "lucid_breaker_trips_total", function="ProxyFunction") == 1
    assert value(text, "lucid_breaker_rejections_total", function="ProxyFunction") == 1
    assert value(text, "lucid_cold_starts_total", function="MetaFunction") == 1


def test_a_closed_edge_hears_no_more_events(metrics: EdgeMetrics) -> None:
    metrics.close()
    observability.count("RateLimited")
    text, _ = metrics.exposition()
    assert value(text, "lucid_ratelimit_decisions_total", function="-", decision="refused") is None


def test_gauges_breakers_and_edge_counters(metrics: EdgeMetrics) -> None:
    # GIVEN one answer of the stage throttle, one 429 of a function's own, a timeout, and an
    # authorizer's hit, miss and failure
    health = cast(RouteSpec, SimpleNamespace(route_key="GET /health", function="MetaFunction"))
    metrics.answered(health, TOO_MANY_REQUESTS, time.perf_counter())
    metrics.answered(health, HttpResponse(429, [], b"{}"), time.perf_counter())
    metrics.function_error("ProxyFunction", "timeout")
    for outcome in ("hit", "miss", "error"):
        metrics.authorizer("LucidAuthorizer", outcome)
    text, _ = metrics.exposition()
    labels = {"route": "GET /health", "function": "MetaFunction", "status": "429"}
    assert value(text, "lucid_requests_total", **labels) == 2
    assert value(text, "lucid_function_instances", function="MetaFunction") == 3
    assert value(text, "lucid_function_queue_depth", function="MetaFunction") == 2
    assert value(text, "lucid_concurrency_running") == 5
    assert value(text, "lucid_concurrency_limit") == 32
    assert value(text, "lucid_breaker_state", backend="blockchain", state="open") == 1
    assert value(text, "lucid_breaker_state", backend="blockchain", state="closed") == 0
    assert value(text, "lucid_breaker_state", backend="node", state="closed") == 1
    assert value(text, "lucid_throttled_requests_total", route="GET /health") == 1
    assert value(text, "lucid_function_errors_total", function="ProxyFunction", kind="timeout") == 1
    assert value(text, "lucid_authorizer_errors_total", authorizer="LucidAuthorizer") == 1
    for result in ("hit", "miss"):
        cache = {"authorizer": "LucidAuthorizer", "result": result}
        assert value(text, "lucid_authorizer_cache_total", **cache) == 1


def test_an_unreadable_breaker_store_leaves_the_rest_of_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def redis_down() -> dict[str, str]:
        raise ConnectionError("refused")

    metrics = EdgeMetrics(lambda: {}, lambda: (0, 32), breaker_states=redis_down)
    try:
        metrics.request("GET /health", "MetaFunction", 200, time.perf_counter())
        text, _ = metrics.exposition()
    finally:
        metrics.close()
    assert not any(name == "lucid_breaker_state" for name, _ in samples(text))
    assert value(text, "lucid_concurrency_limit") == 32
    assert "breaker states unreadable: ConnectionError" in caplog.text


def test_the_breaker_states_are_read_from_the_functions_redis(redis_client: object) -> None:
    # GIVEN the node backend's breaker tripped in the shared store (the session's Redis)
    from lucid.proxy import RedisBreakerStore

    store = RedisBreakerStore(redis_client)  # type: ignore[arg-type]
    store.trip("node", 30_000, force=True)
    try:
        states = edge_metrics.read_breaker_states()
    finally:
        store.close("node")  # the session's Redis serves later tests' edges
    assert states == {"blockchain": "closed", "session": "closed", "node": "open"}


def test_the_metrics_path_never_hides_a_template_route() -> None:
    check_path("/metrics", lambda method, path: False)
    with pytest.raises(MetricsPathError, match=r"GET /metrics.*--metrics-path"):
        check_path("/metrics", lambda method, path: (method, path) == ("GET", "/metrics"))
    with pytest.raises(MetricsPathError, match="start with '/'"):
        check_path("metrics", lambda method, path: False)
    # "" serves no endpoint: what a template whose $default route answers every path needs
    check_path("", lambda method, path: True)


def test_the_multiprocess_directory_lives_as_long_as_the_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(edge_metrics.ENV_DIRECTORY, "/somewhere/else")
    with metrics_workers.multiprocess_directory() as directory:
        assert os.environ[edge_metrics.ENV_DIRECTORY] == str(directory)
        (directory / "counter_1.db").write_bytes(b"x")
    assert not directory.exists()
    assert os.environ[edge_metrics.ENV_DIRECTORY] == "/somewhere/else"


WORKER = textwrap.dedent(
    """
    import sys
    import time
    from lucid_edge.metrics import EdgeMetrics, FunctionLoad
    instances = int(sys.argv[1])
    metrics = EdgeMetrics(
        lambda: {"MetaFunction": FunctionLoad(instances, 0)},
        lambda: (instances, 32),
        breaker_states=lambda: {"node": "half_open"},
    )
    for _ in range(instances):
        metrics.request("GET /health", "MetaFunction", 200, time.perf_counter())
    if sys.argv[2] == "expose":
        sys.stdout.write(metrics.exposition()[0].decode())
    else:
        metrics.sample()
    """
)


def run_worker(directory: Path, instances: int, action: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, edge_metrics.ENV_DIRECTORY: str(directory)}
    return subprocess.run(
        [sys.executable, "-c", WORKER, str(instances), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_workers_series_are_summed_and_a_dead_workers_gauges_dropped(tmp_path: Path) -> None:
    # GIVEN two worker processes that served 2 and 3 requests and had 2 and 3 instances
    first = run_worker(tmp_path, 2, "sample")
    run_worker(tmp_path, 3, "sample")
    # WHEN a third worker answers /metrics (it served 1 request, has 1 instance)
    text = run_worker(tmp_path, 1, "expose").stdout.encode()
    # THEN the counters of all three are summed, and so are the gauges: the first two workers
    # are gone, but nobody has told the library yet
    assert first.returncode == 0
    labels = {"route": "GET /health", "function": "MetaFunction", "status": "200"}
    assert value(text, "lucid_requests_total", **labels) == 6
    assert value(text, "lucid_request_duration_seconds_count", **labels) == 6
    assert value(text, "lucid_breaker_state", backend="node", state="half_open") == 1
    assert value(text, "lucid_function_instances", function="MetaFunction") == 6
    gauges = sorted(tmp_path.glob("gauge_livesum_*.db"))
    assert len(gauges) == 3
    # AND once the edge marks the dead workers, their gauges stop counting; counters stay
    for path in gauges:
        pid = int(path.stem.rsplit("_", 1)[1])
        metrics_workers.mark_dead(pid, tmp_path)
    assert not list(tmp_path.glob("gauge_livesum_*.db"))
    text = run_worker(tmp_path, 1, "expose").stdout.encode()
    assert value(text, "lucid_function_instances", function="MetaFunction") == 1
    assert value(text, "lucid_requests_total", **labels) == 7


class _Worker:
    def __init__(self, pid: int, exitcode: int | None = None) -> None:
        self.pid, self.exitcode = pid, exitcode


def test_the_supervisor_marks_each_worker_it_loses_as_dead(tmp_path: Path) -> None:
    # GIVEN gauge files of three workers, as their processes leave them
    for pid in (101, 102, 103):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
    (tmp_path / "counter_102.db").write_bytes(b"")
    config = Config("lucid_edge.server:create_app", factory=True, workers=3)
    supervisor = metrics_workers.WorkerSupervisor(config, [], tmp_path)
    supervisor.processes = [_Worker(101), _Worker(102), _Worker(103)]  # type: ignore[list-item]
    supervisor.mark_gone()
    assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 3
    # WHEN uvicorn replaces a dead worker (102 -> 104) and one exits without being replaced
    supervisor.processes = [_Worker(101), _Worker(104), _Worker(103, exitcode=0)]  # type: ignore[list-item]
    supervisor.mark_gone()
    # THEN their gauges stop counting, their counters stay, the live workers' are kept
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_102.db",
        "gauge_livesum_101.db",
    ]


def test_the_supervisor_gives_up_at_the_fifth_worker_death_within_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the supervisor of two workers, and a clock
    config = Config("lucid_edge.server:create_app", factory=True, workers=2)
    supervisor = metrics_workers.WorkerSupervisor(config, [], tmp_path)
    now = [1000.0]
    monkeypatch.setattr(metrics_workers, "time", SimpleNamespace(monotonic=lambda: now[0]))
    # (uvicorn's log configuration stops its lines short of the root logger pytest watches)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)
    monkeypatch.setattr(uvicorn_log, "level", logging.INFO)
    try:
        # WHEN workers die 61 s apart, four times
        for pid in range(4):
            supervisor._count_death(pid, 1)
            now[0] += 61
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    # THEN each is one WARNING line and the edge goes on (one loss now and then is replaced)
    assert supervisor.gave_up is None
    assert not supervisor.should_exit.is_set()
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"worker [{pid}] died (exit status 1), replaced: 1 of 5 deaths within 60 s stop the edge"
        for pid in range(4)
    ]
    # WHEN five die within a minute, the last killed by a signal
    for pid, code in ((10, 1), (11, 1), (12, -11), (13, 1), (14, -9)):
        supervisor._count_death(pid, code)
        now[0] += 10
    # AND the other worker is found dead in the same pass of uvicorn's check
    supervisor._count_death(15, 1)
    # THEN the fifth stops the edge, saying why (the death after it changes nothing)
    assert supervisor.should_exit.is_set()
    assert supervisor.gave_up == (
        "5 workers died within 60 s (the last, [14], with signal 9): stopping instead of "
        "starting more; their output above says why"
    )


def test_loading_the_edge_reads_no_layer_settings_before_the_template_is_applied() -> None:
    # GIVEN a fresh worker process loading the edge's app module (uvicorn imports it first)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, lucid_edge.server; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    # THEN the layer's settings are still unread: the template's environment (ServiceName,
    # REDIS_URI, ...) is exported afterwards, and the layer reads its settings only once
    assert "'lucid.observability'" not in loaded


def test_authorizer_counts_stay_apart_by_authorizer_and_result_when_repeated(
    metrics: EdgeMetrics,
) -> None:
    # GIVEN two authorizers answering from their caches many times, asked a few times, failing
    # once (each signed-in request counts one: the counter's children are kept, not looked up)
    for _ in range(3):
        metrics.authorizer("A", "hit")
    metrics.authorizer("A", "miss")
    metrics.authorizer("B", "hit")
    metrics.authorizer("B", "miss")
    metrics.authorizer("B", "miss")
    metrics.authorizer("B", "error")
    text, _ = metrics.exposition()
    # THEN each authorizer and result has its own count
    counts = {
        (name, result): value(text, "lucid_authorizer_cache_total", authorizer=name, result=result)
        for name in ("A", "B")
        for result in ("hit", "miss")
    }
    assert counts == {("A", "hit"): 3, ("A", "miss"): 1, ("B", "hit"): 1, ("B", "miss"): 2}
    assert value(text, "lucid_authorizer_errors_total", authorizer="B") == 1


def test_event_counts_stay_apart_by_function_and_event_when_repeated(
    metrics: EdgeMetrics,
) -> None:
    # GIVEN two functions (and code outside any function) counting the same events many times,
    # some with a metric of their own, one labelled by its decision, one counted by name (each
    # signed-in request counts a RateLimitAdmitted: the children are kept, not looked up)
    counted = [
        ("UsersFunction", "RateLimitAdmitted", 3),
        ("SessionsFunction", "RateLimitAdmitted", 2),
        ("UsersFunction", "RateLimited", 1),
        ("SessionsFunction", "RateLimitFallback", 2),
        (None, "RateLimitAdmitted", 1),
        ("UsersFunction", "SignInSucceeded", 2),
        ("SessionsFunction", "SignInSucceeded", 1),
    ]
    for _ in range(2):
        for function, event, times in counted:
            for _ in range(times):
                metrics.on_event(function, event)
    text, _ = metrics.exposition()
    # THEN each function and event has its own count, twice what one round counted
    decisions = {
        (function, decision): value(
            text, "lucid_ratelimit_decisions_total", function=function, decision=decision
        )
        for function in ("UsersFunction", "SessionsFunction", "-")
        for decision in ("admitted", "refused")
    }
    assert decisions == {
        ("UsersFunction", "admitted"): 6,
        ("UsersFunction", "refused"): 2,
        ("SessionsFunction", "admitted"): 4,
        ("SessionsFunction", "refused"): None,
        ("-", "admitted"): 2,
        ("-", "refused"): None,
    }
    assert value(text, "lucid_ratelimit_fallbacks_total", function="SessionsFunction") == 4
    assert value(text, "lucid_ratelimit_fallbacks_total", function="UsersFunction") is None
    signins = {
        function: value(
            text, "lucid_function_events_total", function=function, event="SignInSucceeded"
        )
        for function in ("UsersFunction", "SessionsFunction")
    }
    assert signins == {"UsersFunction": 4, "SessionsFunction": 2}
