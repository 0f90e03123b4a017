"""Structured logs and CloudWatch metrics: one Powertools Logger, EMF metrics per invocation.

`instrument(handler)` wraps every function's Lambda handler (the FastAPI functions' through
`lucid.web.app.lambda_handler`, the authorizer's in its app.py). For each invocation it

- puts the invocation's keys on every line the function logs, the layer's `lucid.*` loggers
  included: `correlation_id` (API Gateway's request id, `requestContext.requestId`, the path
  Powertools names `correlation_paths.API_GATEWAY_HTTP`), `cold_start`, and the `function_*`
  keys of the Lambda context - the keys Powertools' `Logger.inject_lambda_context` adds;
- gives the invocation its own metric set (`count`, `record`), printed as one CloudWatch EMF
  line when it ends, plus Powertools' separate `ColdStart` metric on a cold start - what
  `Metrics.log_metrics(capture_cold_start_metric=True)` prints. The line carries the
  `correlation_id` as EMF metadata (searchable in the logs, not a dimension). An invocation
  that recorded nothing prints nothing.

Why not those two decorators as they are: both keep the invocation's state in the process.
`inject_lambda_context` writes its keys with `append_keys` into the one formatter's dict, and
every `Metrics` instance shares class-level metric and dimension dicts, flushed whole by
`log_metrics`. One Lambda instance runs one invocation at a time, so in AWS that is right; the
local edge, our test harness, runs concurrent invocations in threads of one process, where a line
would carry another request's correlation id and one invocation would print (or lose) another's
metrics. So the keys go through Powertools' thread-safe keys (a ContextVar, copied into the
asyncio tasks Mangum runs and into the worker threads FastAPI runs sync code in), and each
invocation's metrics live in a Powertools `EphemeralMetrics` held by a ContextVar too.

A metric never breaks a request: the namespace always has a value (POWERTOOLS_METRICS_NAMESPACE,
default "Lucid"), and a metric Powertools refuses is logged and dropped.

Every HTTP request a function answers adds its latency and outcome to the same line
(`observe_request`, called once from the access-log block of `lucid.web.middleware`):
`Latency` (milliseconds), `Fault` (1 for a 5xx answer, else 0) and `ClientError` (1 for a 4xx),
so a statistic's Average is a rate. The line's metrics are then published under three
dimension sets: `service`, `service`+`function` and `service`+`route` (the API Gateway route
key, e.g. "GET /users/{id}"): per-route and per-function latency and errors at the price of one
print per invocation, which the invocation pays anyway.

Sinks (`add_sink`): the local edge mirrors the events counted here (`count`, and the cold
start) into its Prometheus metrics; in Lambda no sink is registered and nothing else runs.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, SchemaValidationError
from aws_lambda_powertools.metrics.exceptions import MetricValueError
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.exceptions import (
    MetricNameError,
    MetricResolutionError,
    MetricUnitError,
)

from lucid.config import get_settings

__all__ = [
    "EventSink",
    "MetricUnit",
    "add_sink",
    "count",
    "flush_metrics",
    "instrument",
    "logger",
    "observe_request",
    "record",
    "remove_sink",
]

_settings = get_settings()
SERVICE = _settings.SERVICE_NAME
NAMESPACE = _settings.POWERTOOLS_METRICS_NAMESPACE

logger = Logger(service=SERVICE, level=_settings.LOG_LEVEL, use_rfc3339=True)
# Our modules log through the standard library ("lucid.*"); route them into the same JSON output.
logging.getLogger("lucid").handlers = logger.handlers
logging.getLogger("lucid").setLevel(_settings.LOG_LEVEL)
logging.getLogger("lucid").propagate = False

# The formatter holds the thread-safe keys; looked up once (the Logger's property walks the
# handlers on every call, a third of the per-invocation cost).
_keys = logger.registered_formatter
_log = logging.getLogger("lucid.observability")
_REFUSED_METRIC = (MetricNameError, MetricValueError, MetricUnitError, MetricResolutionError)

Handler = TypeVar("Handler", bound=Callable[..., Any])
# (function name or None outside an invocation, event name): what `count` and a cold start tell
# the sinks.
EventSink = Callable[[str | None, str], None]

COLD_START = "ColdStart"  # Powertools' name for it
LATENCY = "Latency"
FAULT = "Fault"
CLIENT_ERROR = "ClientError"


# One metric set per invoking thread, reused invocation after invocation (emptied by each
# flush): building an EphemeralMetrics lists every unit and resolution (~11 us), which every
# HTTP invocation would pay since each records its latency. A thread runs one invocation at a
# time (a Lambda instance; one of the local edge's instance threads), and the set is bound when
# the invocation starts, on its own thread, so code it runs in other threads (FastAPI's sync
# dependencies) records into it too.
_per_thread = threading.local()


def _thread_metrics() -> EphemeralMetrics:
    metrics: EphemeralMetrics | None = getattr(_per_thread, "metrics", None)
    if metrics is None:
        metrics = _per_thread.metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    elif metrics.metadata_set:  # an invocation that recorded nothing left its metadata
        metrics.clear_metrics()
    metrics.namespace = NAMESPACE
    return metrics


class _InvocationMetrics:
    """The metric set of one invocation (or of code outside any, created on first use)."""

    __slots__ = ("correlation_id", "function", "metrics")

    def __init__(
        self,
        correlation_id: str | None = None,
        function: str | None = None,
        metrics: EphemeralMetrics | None = None,
    ) -> None:
        self.correlation_id = correlation_id
        self.function = function
        self.metrics = metrics
        if metrics is not None and correlation_id is not None:
            metrics.add_metadata(key="correlation_id", value=correlation_id)

    def get(self) -> EphemeralMetrics:
        if self.metrics is None:
            self.metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
            if self.correlation_id is not None:
                self.metrics.add_metadata(key="correlation_id", value=self.correlation_id)
        return self.metrics


_current: ContextVar[_InvocationMetrics | None] = ContextVar("lucid_metrics", default=None)
# What code running outside any invocation records (nothing in Lambda; direct calls in tests):
# only `flush_metrics()` prints it.
_outside = _InvocationMetrics()
_sinks: list[EventSink] = []


def add_sink(sink: EventSink) -> None:
    """Also tell `sink` every event counted from now on (the local edge's Prometheus metrics)."""
    _sinks.append(sink)


def remove_sink(sink: EventSink) -> None:
    """Stop telling `sink` (an edge that closes)."""
    if sink in _sinks:
        _sinks.remove(sink)


def _tell_sinks(function: str | None, name: str) -> None:
    for sink in _sinks:
        try:
            sink(function, name)
        except Exception:  # a mirror of a metric never breaks the request
            _log.exception("metric sink failed on %r", name)


def record(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """Add `value` to metric `name` for the current invocation (printed when it ends)."""
    metrics = (_current.get() or _outside).get()
    try:
        metrics.add_metric(name=name, unit=unit, value=value)
    except _REFUSED_METRIC as error:
        _log.warning("metric %r dropped: %s", name, error)


def count(name: str) -> None:
    """Add one to the metric `name` (an event worth alarming on: sign-ins, trips, refusals)."""
    record(name, 1)
    if _sinks:
        _tell_sinks((_current.get() or _outside).function, name)


def observe_request(route: str | None, status: int, duration_ms: float) -> None:
    """One HTTP request's latency and outcome, published per route and function as well.

    Only inside an invocation, whose end prints them: an app served without Lambda's handler
    (uvicorn directly, a test client) has no line to add them to, and would keep them forever.
    """
    invocation = _current.get()
    if invocation is None:
        return
    metrics = invocation.get()
    try:
        if route:
            metrics.add_dimensions(service=SERVICE, route=route)
        if invocation.function:
            metrics.add_dimensions(service=SERVICE, function=invocation.function)
        metrics.add_metric(name=LATENCY, unit=MetricUnit.Milliseconds, value=duration_ms)
        metrics.add_metric(name=FAULT, unit=MetricUnit.Count, value=int(status >= 500))
        metrics.add_metric(name=CLIENT_ERROR, unit=MetricUnit.Count, value=int(400 <= status < 500))
    except (*_REFUSED_METRIC, SchemaValidationError) as error:
        _log.warning("request metrics dropped: %s", error)


def _write(metrics: EphemeralMetrics) -> None:
    """Print `metrics` as one EMF line, written and flushed in one call.

    What `flush_metrics` does, but for the write: Powertools `print()`s the line, i.e. two
    writes (the JSON, then the newline) into a buffered stdout. Where several invocations share
    one stdout - the local edge's threads and worker processes, every request printing its
    line - a buffer flushed mid-line or another thread's line in between tears lines apart.
    """
    try:
        if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, as Powertools honours it
            return
        line = json.dumps(metrics.serialize_metric_set(), separators=(",", ":"))
    except SchemaValidationError as error:
        _log.warning("metrics dropped: %s", error)
        return
    finally:
        metrics.clear_metrics()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _flush(invocation: _InvocationMetrics) -> None:
    metrics = invocation.metrics
    if metrics is None or not metrics.metric_set:
        return
    _write(metrics)


def _cold_start(function_name: str) -> None:
    # Powertools' `add_cold_start_metric`: its own line, dimensions function_name and service.
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    try:
        metrics.add_dimension(name="function_name", value=function_name)
        metrics.add_metric(name=COLD_START, unit=MetricUnit.Count, value=1)
    except _REFUSED_METRIC as error:
        _log.warning("cold start metric dropped: %s", error)
        return
    _write(metrics)


def flush_metrics() -> None:
    """Print what was recorded outside any invocation as EMF, if anything; nothing otherwise."""
    _flush(_outside)


def _invocation_keys(event: Any, context: Any, cold_start: bool) -> dict[str, Any]:
    """The keys of every line an invocation logs (None values are left out of the lines)."""
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    return {
        "correlation_id": (
            request_context.get("requestId") if isinstance(request_context, dict) else None
        ),
        "cold_start": cold_start,
        "function_name": getattr(context, "function_name", None),
        "function_memory_size": getattr(context, "memory_limit_in_mb", None),
        "function_arn": getattr(context, "invoked_function_arn", None),
        "function_request_id": getattr(context, "aws_request_id", None),
    }


def instrument(handler: Handler) -> Handler:
    """`handler` with its invocations' log keys and metrics (see the module docstring)."""
    invocations = itertools.count()  # next() is atomic: one cold start even if two race

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        cold_start = next(invocations) == 0
        keys = _invocation_keys(event, context, cold_start)
        _keys.thread_safe_append_keys(**keys)
        invocation = _InvocationMetrics(
            keys["correlation_id"], keys["function_name"], _thread_metrics()
        )
        token = _current.set(invocation)
        try:
            return handler(event, context)
        finally:
            _current.reset(token)
            if cold_start and context is not None:
                _cold_start(str(getattr(context, "function_name", "") or "unknown"))
                if _sinks:
                    _tell_sinks(invocation.function, COLD_START)
            _flush(invocation)
            _keys.thread_safe_clear_keys()

    return cast(Handler, invoke)
