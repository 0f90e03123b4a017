"""The local edge's Prometheus metrics and its `/metrics` endpoint (prometheus-client).

What is measured, and where it comes from:

    lucid_requests_total{route,function,status}            every answer the edge gives (the
    lucid_request_duration_seconds{route,function,status}  request received -> answer ready);
                                                           route "-" when no route matched
    lucid_throttled_requests_total{route}                  the stage throttle's 429s
    lucid_function_errors_total{function,kind}             raised | timeout | integration_timeout
                                                           | throttled | invalid_result
    lucid_authorizer_cache_total{authorizer,result}        hit | miss of the decision cache
    lucid_authorizer_errors_total{authorizer}              the authorizer failed (500)
    lucid_function_instances{function}                     instances now, summed over workers
    lucid_function_queue_depth{function}                   invocations waiting for room
    lucid_concurrency_running / lucid_concurrency_limit    the unreserved concurrency in use
    lucid_cold_starts_total{function}                      from the functions' own cold-start
    lucid_ratelimit_decisions_total{function,decision}     metric and counters
    lucid_ratelimit_fallbacks_total{function}              (`lucid.observability` sinks: the
    lucid_breaker_trips_total{function}                    same events the functions publish
    lucid_breaker_rejections_total{function}               as CloudWatch EMF in AWS)
    lucid_function_events_total{function,event}            every other counted event
    lucid_breaker_state{backend,state}                     1 for each backend's current state,
                                                           read from Redis at each scrape

The failure counters the alert rules read exist at 0 for every route, function and authorizer
from the start (`expect`): Prometheus's `increase()` misses the first burst of a series that
appears only when it happens.

Workers: `lucid serve` runs several processes, each writing its own files in the directory
`lucid_edge.metrics_workers` manages (prometheus-client's multiprocess mode); whichever worker
answers `/metrics` sums them all. The gauges count live processes only ("livesum"). Without
PROMETHEUS_MULTIPROC_DIR (an edge built in a test process) the metrics live in this process.

`/metrics` belongs to the edge, not to the template: API Gateway has no such endpoint, and the
edge refuses to start when a template route would answer the same path (`check_path`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from lucid_edge.model import RouteSpec
from lucid_edge.responses import TOO_MANY_REQUESTS, HttpResponse

__all__ = [
    "DEFAULT_PATH",
    "ENV_DIRECTORY",
    "EdgeMetrics",
    "FunctionLoad",
    "MetricsPathError",
    "check_path",
    "multiprocess",
]

DEFAULT_PATH = "/metrics"
ENV_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
NO_ROUTE = "-"
# Seconds. API Gateway's own latency figures are in milliseconds from ~1 ms; the functions'
# here take from ~1 ms (/health) to the 30 s integration timeout.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BREAKER_STATES = ("closed", "half_open", "open")
# Why an invocation gave no usable result (`lucid_function_errors_total{kind}`).
FUNCTION_ERROR_KINDS = ("raised", "timeout", "integration_timeout", "throttled", "invalid_result")

# The functions' counted events (EMF names, `lucid.observability.count`) with a metric of
# their own: (metric attribute, label value or None).
_EVENTS: dict[str, tuple[str, str | None]] = {
    "ColdStart": ("cold_starts", None),  # lucid.observability.COLD_START, Powertools' name
    "RateLimitAdmitted": ("ratelimit_decisions", "admitted"),
    "RateLimited": ("ratelimit_decisions", "refused"),
    "RateLimitFallback": ("ratelimit_fallbacks", None),
    "CircuitOpened": ("breaker_trips", None),
    "CircuitRejected": ("breaker_rejections", None),
}

_log = logging.getLogger("lucid_edge.metrics")


class MetricsPathError(ValueError):
    """The metrics path would hide a template route, or is not a path."""


class FunctionLoad(NamedTuple):
    """One function's instances and queued invocations in this worker, now."""

    instances: int
    queued: int


def multiprocess() -> bool:
    """True when prometheus-client was imported in multiprocess mode (the variable was set)."""
    return values.ValueClass is not values.MutexValue


class _BreakerStates:
    """Collector: each backend's breaker state, as the functions share it in Redis."""

    def __init__(self, read: Callable[[], Mapping[str, str]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        try:
            states = self._read()
        except Exception as error:  # Redis down: no breaker series, the rest still scraped
            _log.warning("breaker states unreadable: %s", type(error).__name__)
            return []
        family = GaugeMetricFamily(
            "lucid_breaker_state",
            "1 for the state each backend's circuit breaker is in (shared through Redis)",
            labels=["backend", "state"],
        )
        for backend, current in sorted(states.items()):
            for state in BREAKER_STATES:
                family.add_metric([backend, state], 1.0 if state == current else 0.0)
        return [family]


def read_breaker_states() -> dict[str, str]:
    """Every backend's breaker state from Redis (the functions' shared record)."""
    from lucid.proxy.health import breaker_states  # the proxy's modules, only when scraped
    from lucid.store.redis_client import get_redis

    return {name: state.value for name, state in breaker_states(get_redis()).items()}


class EdgeMetrics:
    """The metrics of one edge in this process, and their exposition."""

    def __init__(
        self,
        load: Callable[[], Mapping[str, FunctionLoad]],
        concurrency: Callable[[], tuple[int, int]],
        *,
        breaker_states: Callable[[], Mapping[str, str]] = read_breaker_states,
    ) -> None:
        self._load = load
        self._concurrency = concurrency
        self._multiprocess = multiprocess()
        # Our own registry, never the library's global one: a test process builds many edges.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lucid_requests", "Answers the edge gave", ["route", "function", "status"], registry=r
        )
        self.duration = Histogram(
            "lucid_request_duration_seconds",
            "From the request received to its answer ready",
            ["route", "function", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.throttled = Counter(
            "lucid_throttled_requests", "Refused by the stage throttle (429)", ["route"], registry=r
        )
        self.function_errors = Counter(
            "lucid_function_errors",
            "Invocations without a usable result, by kind",
            ["function", "kind"],
            registry=r,
        )
        self.authorizer_cache = Counter(
            "lucid_authorizer_cache",
            "Authorizer decisions taken from the cache (hit) or asked for (miss)",
            ["authorizer", "result"],
            registry=r,
        )
        self.authorizer_errors = Counter(
            "lucid_authorizer_errors", "Authorizer failures (500)", ["authorizer"], registry=r
        )
        live: Any = {"multiprocess_mode": "livesum"}
        self.instances = Gauge(
            "lucid_function_instances", "Instances now", ["function"], registry=r, **live
        )
        self.queue_depth = Gauge(
            "lucid_function_queue_depth", "Invocations waiting", ["function"], registry=r, **live
        )
        self.running = Gauge(
            "lucid_concurrency_running", "Unreserved concurrency in use", registry=r, **live
        )
        self.limit = Gauge(
            "lucid_concurrency_limit", "Unreserved concurrency available", registry=r, **live
        )
        self.cold_starts = Counter(
            "lucid_cold_starts", "Functions' cold starts", ["function"], registry=r
        )
        self.ratelimit_decisions = Counter(
            "lucid_ratelimit_decisions",
            "Tiered rate-limit decisions",
            ["function", "decision"],
            registry=r,
        )
        self.ratelimit_fallbacks = Counter(
            "lucid_ratelimit_fallbacks",
            "Rate-limit checks made without Redis",
            ["function"],
            registry=r,
        )
        self.breaker_trips = Counter(
            "lucid_breaker_trips", "Circuit breakers opened", ["function"], registry=r
        )
        self.breaker_rejections = Counter(
            "lucid_breaker_rejections", "Calls refused by an open breaker", ["function"], registry=r
        )
        self.events = Counter(
            "lucid_function_events",
            "Other events the functions count",
            ["function", "event"],
            registry=r,
        )
        self._breakers = _BreakerStates(breaker_states)
        if not self._multiprocess:
            r.register(self._breakers)
        # Children by label values: `labels()` costs a few microseconds per call on the hot path.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._authorizer_children: dict[tuple[str, str], Any] = {}
        self._event_children: dict[tuple[str | None, str], Any] = {}
        # Imported here, not with this module: the layer reads its settings once, when first
        # imported, and the edge exports the template's environment only after this module is
        # loaded (`build_app`).
        from lucid import observability

        self._observability = observability
        observability.add_sink(self.on_event)

    def expect(
        self, routes: Iterable[RouteSpec], authorizers: Iterable[str], functions: Iterable[str]
    ) -> None:
        """Export the counters of failures at 0 for every route, authorizer and function before
        the first one happens.

        Prometheus's `increase()` and `rate()` count what a series gained between two scrapes:
        a series that first appears at its value after a burst (a prometheus-client child is
        created on its first `inc()`) gains nothing, so the alerts on these counters
        (monitoring/alerts.yml) missed a first burst of throttles, function or authorizer
        errors, or rate limits checked without Redis entirely, and any single such event (and the
        dashboard's "Cold starts" panel each function's first cold start). The
        instrumentation guide says so: "Avoid missing metrics", initialise them to 0
        (https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics).
        """
        for route in routes:
            self.throttled.labels(route.route_key)
        for name in authorizers:
            self.authorizer_errors.labels(name)
        for function in functions:
            for kind in FUNCTION_ERROR_KINDS:
                self.function_errors.labels(function, kind)
            for counter in (
                self.ratelimit_fallbacks,
                self.breaker_trips,
                self.breaker_rejections,
                self.cold_starts,  # the dashboard's "Cold starts" panel: increase() too
            ):
                counter.labels(function)

    def close(self) -> None:
        """Stop hearing the functions' events."""
        self._observability.remove_sink(self.on_event)

    def request(self, route: str | None, function: str | None, status: int, started: float) -> None:
        """One answer: `started` is the `time.perf_counter()` of the request's arrival."""
        key = (route or NO_ROUTE, function or NO_ROUTE, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (key[0], key[1], str(status))
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)

    def answered(self, route: RouteSpec | None, response: HttpResponse, started: float) -> None:
        """The edge answered a request of `route` (None: no route matched) with `response`."""
        if route is None:
            self.request(None, None, response.status, started)
            return
        if response is TOO_MANY_REQUESTS:  # the stage throttle's own answer object
            self.throttled.labels(route.route_key).inc()
        self.request(route.route_key, route.function, response.status, started)

    def function_error(self, function: str, kind: str) -> None:
        """An invocation of `function` gave no usable result (see `lucid_function_errors`)."""
        self.function_errors.labels(function, kind).inc()

    def authorizer(self, name: str, outcome: str) -> None:
        """Authorizer `name` answered from its cache (`hit`), was asked (`miss`), or failed
        (`error`, after its miss)."""
        if outcome == "error":
            self.authorizer_errors.labels(name).inc()
            return
        # Every signed-in request counts one: its child is looked up once (`labels()` costs
        # several times what `inc()` does), as `request` keeps its own.
        child = self._authorizer_children.get((name, outcome))
        if child is None:
            child = self._authorizer_children[(name, outcome)] = self.authorizer_cache.labels(
                name, outcome
            )
        child.inc()

    def on_event(self, function: str | None, name: str) -> None:
        """A function counted an event (`lucid.observability` sink)."""
        # Every signed-in request counts one (RateLimitAdmitted): the child of each (function,
        # event) is looked up once and kept, as `request` and `authorizer` keep theirs. Called
        # from the functions' instance threads: two of them may look the same child up at once,
        # and `labels()` gives both the same child (it holds its own lock), so nothing is lost.
        child = self._event_children.get((function, name))
        if child is None:
            child = self._event_children[(function, name)] = self._event_child(function, name)
        child.inc()

    def _event_child(self, function: str | None, name: str) -> Any:
        target = _EVENTS.get(name)
        function = function or NO_ROUTE
        if target is None:
            return self.events.labels(function, name)
        attribute, label = target
        metric = getattr(self, attribute)
        return metric.labels(function, label) if label else metric.labels(function)

    def sample(self) -> None:
        """Set the gauges from this worker's functions (each worker does, every second)."""
        for function, load in self._load().items():
            self.instances.labels(function).set(load.instances)
            self.queue_depth.labels(function).set(load.queued)
        running, limit = self._concurrency()
        self.running.set(running)
        self.limit.set(limit)

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every worker's metrics (blocking: files and Redis are read)."""
        self.sample()
        if self._multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, os.environ[ENV_DIRECTORY])  # type: ignore[no-untyped-call]
            registry.register(self._breakers)
        else:
            registry = self.registry
        return generate_latest(registry), CONTENT_TYPE_LATEST


def check_path(path: str, matches: Callable[[str, str], bool]) -> None:
    """Refuse a metrics path that is not absolute, or that a template route would answer
    (`matches(method, path)`): the edge's own endpoint must never hide one of the API's. An
    empty path serves no endpoint: a `$default` or `/{proxy+}` route answers every path."""
    if not path:
        return
    if not path.startswith("/"):
        raise MetricsPathError(f"the metrics path must start with '/': {path!r}")
    if matches("GET", path):
        raise MetricsPathError(
            f"a template route answers GET {path}: the edge's metrics endpoint would hide it; "
            "serve the metrics elsewhere with --metrics-path, or not at all with "
            "--metrics-path '' (a $default or /{proxy+} route answers every path)"
        )
