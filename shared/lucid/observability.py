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
invocation's metrics live in a set of its own held by a ContextVar too (`MetricSet`: the line
`EphemeralMetrics` prints, for a fraction of its CPU).

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
import numbers
import sys
import time
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
from lucid.errors import ServiceUnavailableError
from lucid.log_masking import MaskSecrets, masked_exception, secret_values

__all__ = [
    "EventSink",
    "LibraryLines",
    "MetricUnit",
    "add_sink",
    "count",
    "flush_metrics",
    "instrument",
    "library_lines",
    "logger",
    "observe_request",
    "record",
    "remove_sink",
    "take_root_logger",
]

_settings = get_settings()
SERVICE = _settings.SERVICE_NAME
NAMESPACE = _settings.POWERTOOLS_METRICS_NAMESPACE

logger = Logger(service=SERVICE, level=_settings.LOG_LEVEL, use_rfc3339=True)
# Our modules log through the standard library ("lucid.*"); route them into the same JSON output.
logging.getLogger("lucid").handlers = logger.handlers
logging.getLogger("lucid").setLevel(_settings.LOG_LEVEL)
logging.getLogger("lucid").propagate = False
# Mangum's too: left to propagate, its lines reach the root logger, which in Lambda holds the
# runtime's plain-text handler (awslambdaric bootstrap `_setup_logging`: "[%(levelname)s]\t…
# %(message)s") and outside Lambda none (Python's last-resort handler: bare text on stderr).
# Only its warnings and errors: its one error is an exception that escaped the app
# (`mangum.http`, "An error occurred running the application."; lucid.web.problems drops it when
# our handler logged that exception already); its info line ("GET /path 200" per request)
# repeats our access line.
_mangum = logging.getLogger("mangum")
_mangum.handlers = logger.handlers
_mangum.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[_settings.LOG_LEVEL]))
_mangum.propagate = False


class LibraryLines(logging.Handler):
    """The root logger's handler: what any other logger writes (pymongo, redis, botocore, urllib3,
    httpx, asyncio's "Task exception was never retrieved", Powertools' package logger), written
    by the Powertools handler - JSON with the invocation's keys, `correlation_id` included - plus
    `logger`, the name of the logger that wrote it.

    Why a root handler and not Powertools' `copy_config_to_registered_loggers`: that copies the
    handler onto the loggers that exist when it is called; a library imported later (botocore on
    a first secret read, pymongo on a first query) or a logger created on first use would still
    reach the runtime's plain-text handler. Every logger that propagates reaches the root.

    It writes only a record no handler below the root wrote already (a `NullHandler`, what
    botocore, boto3, urllib3 and Powertools' package logger add to stay silent by default, writes
    nothing): our `lucid.*` and Mangum's loggers do not propagate; Powertools' service logger
    does, with its handler (Powertools relies on a filter it adds to the root's handlers of the
    moment); the local edge's `lucid_edge.*` loggers write their own JSON and propagate for
    pytest's log capture. So nothing is written twice.

    Its level is the configured LOG_LEVEL, never below WARNING: a library's INFO and DEBUG lines
    are per request or per connection (httpx's "HTTP Request: …", botocore's credential lookup),
    and botocore's DEBUG prints each response body (`botocore/parsers.py`, "Response body:"),
    a GetSecretValue's secret included.
    """

    def emit(self, record: logging.LogRecord) -> None:
        logger_ = logging.getLogger(record.name)
        while logger_.parent is not None:  # up to, not including, the root
            if any(not isinstance(h, logging.NullHandler) for h in logger_.handlers):
                return
            logger_ = logger_.parent
        record.logger = record.name
        logger.registered_handler.handle(record)


def _is_lambda_runtime(handler: logging.Handler) -> bool:
    # The Python runtime's root handler (aws-lambda-python-runtime-interface-client,
    # awslambdaric/bootstrap.py `_setup_logging`): `LambdaLoggerHandler`, or
    # `LambdaLoggerHandlerWithFrameType` with the JSON log format or an application log level.
    return type(handler).__name__ in ("LambdaLoggerHandler", "LambdaLoggerHandlerWithFrameType")


def take_root_logger() -> LibraryLines:
    """Give the root logger our handler (one per process), in place of the Lambda runtime's."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if _is_lambda_runtime(handler):
            # Kept, every library line would be written twice: JSON, then the runtime's text.
            root.removeHandler(handler)
    for handler in root.handlers:
        if isinstance(handler, LibraryLines):
            return handler
    ours = LibraryLines(max(logging.WARNING, logging.getLevelNamesMapping()[_settings.LOG_LEVEL]))
    root.addHandler(ours)
    return ours


library_lines = take_root_logger()
# Every line is written by the Powertools handler (ours, Mangum's, LibraryLines'): a library's
# line, or an exception's text, is written with the process's secrets and any JWT masked
# (lucid.log_masking). The authorizer's escaped exceptions ("invocation failed") included.
_masking = next(
    (f for f in logger.registered_handler.filters if isinstance(f, MaskSecrets)), None
) or MaskSecrets(secret_values(_settings))
logger.registered_handler.addFilter(_masking)  # once: a filter already there is not added again
# A library's `warnings.warn` (pymongo's "The value of tls must be 'true' or 'false'" for a
# MONGODB_URI option it ignores) is otherwise printed as plain text on stderr, which Lambda sends
# to CloudWatch too: as a record of `py.warnings` it is one JSON line of the invocation.
logging.captureWarnings(True)

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


# Powertools' limits for one EMF line (aws_lambda_powertools.metrics.provider.cloudwatch_emf).
MAX_METRICS = 100  # metrics per line, and values per metric: the line is printed when reached
MAX_METRIC_NAME_LENGTH = 255
_UNITS = {unit.value: unit.value for unit in MetricUnit} | {
    unit.name: unit.value for unit in MetricUnit
}
# The dimension sets every request's metrics are published under, besides `service` alone.
_ROUTE, _FUNCTION = "route", "function"
_COUNT, _MILLISECONDS = MetricUnit.Count.value, MetricUnit.Milliseconds.value


class MetricSet:
    """One invocation's metrics, printed as the EMF line Powertools' `EphemeralMetrics` prints.

    Why not `EphemeralMetrics` itself: issue 11's profile. Recording a request's latency and
    outcome through it (three `add_metric`, two `add_dimensions`, its serialisation) cost ~17 µs
    of CPU per invocation, about a third of /health's function time; this records a value in a
    dict and serialises once. The line is the same: `_aws` with the timestamp, namespace,
    dimension sets and metric definitions, then the dimension values, the metadata and each
    metric's values (tests/shared/test_observability.py pins it). What CloudWatch would refuse
    is refused as Powertools refuses it (same exceptions): a name outside 1-255 characters, a
    value that is not a number, a unit that is not a CloudWatch unit.
    """

    __slots__ = ("dimensions", "metadata", "metrics", "units")

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.units: dict[str, str] = {}
        self.dimensions: dict[str, str] = {}  # route / function, published as sets beside service
        self.metadata: dict[str, Any] = {}

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        """Add `value` to metric `name` (printed when the invocation ends)."""
        name = name.strip()
        if not 1 <= len(name) <= MAX_METRIC_NAME_LENGTH:
            raise MetricNameError(
                f"The metric name should be between 1 and {MAX_METRIC_NAME_LENGTH} characters"
            )
        if not isinstance(value, numbers.Number) or isinstance(value, complex):
            raise MetricValueError(f"{value} is not a valid number")
        unit_name = _UNITS.get(unit.value if isinstance(unit, MetricUnit) else unit)
        if unit_name is None:
            raise MetricUnitError(f"Invalid metric unit '{unit}'")
        values = self.metrics.get(name)
        if values is None:
            values = self.metrics[name] = []
        self.units[name] = unit_name
        values.append(float(value))
        if len(self.metrics) == MAX_METRICS or len(values) == MAX_METRICS:
            _write(self, keep_dimensions=True)  # what Powertools does at its limit

    def serialize(self) -> dict[str, Any]:
        """The EMF document; SchemaValidationError without a metric or a namespace."""
        if not self.metrics:
            raise SchemaValidationError("Must contain at least one metric.")
        if NAMESPACE is None:
            raise SchemaValidationError("Must contain a metric namespace.")
        dimension_sets = [["service"]]
        dimension_sets.extend(["service", name] for name in self.dimensions)
        return {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": dimension_sets,
                        "Metrics": [
                            {"Name": name, "Unit": self.units[name]} for name in self.metrics
                        ],
                    }
                ],
            },
            "service": SERVICE,
            **self.dimensions,
            **self.metadata,
            **self.metrics,
        }

    def clear(self, *, keep_dimensions: bool = False) -> None:
        """Forget the metrics (and, unless kept, the dimensions and metadata)."""
        self.metrics = {}
        self.units = {}
        if not keep_dimensions:
            self.dimensions = {}
            self.metadata = {}


class _InvocationMetrics:
    """The metric set of one invocation (or of code outside any, created on first use)."""

    __slots__ = ("correlation_id", "function", "metrics")

    def __init__(self, correlation_id: str | None = None, function: str | None = None) -> None:
        self.correlation_id = correlation_id
        self.function = function
        self.metrics: MetricSet | None = None

    def get(self) -> MetricSet:
        if self.metrics is None:
            self.metrics = MetricSet()
            if self.correlation_id is not None:
                self.metrics.metadata["correlation_id"] = self.correlation_id
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
    if route and route.strip():
        metrics.dimensions[_ROUTE] = route
    if invocation.function and invocation.function.strip():
        metrics.dimensions[_FUNCTION] = invocation.function
    # Known names, units and numbers: nothing here can be refused; through `add_metric` so that
    # Powertools' 100-metric limit holds for these too.
    metrics.add_metric(LATENCY, _MILLISECONDS, float(duration_ms))
    metrics.add_metric(FAULT, _COUNT, float(status >= 500))
    metrics.add_metric(CLIENT_ERROR, _COUNT, float(400 <= status < 500))


def _write(metrics: MetricSet, *, keep_dimensions: bool = False) -> None:
    """Print `metrics` as one EMF line, written and flushed in one call.

    What `flush_metrics` does, but for the write: Powertools `print()`s the line, i.e. two
    writes (the JSON, then the newline) into a buffered stdout. Where several invocations share
    one stdout - the local edge's threads and worker processes, every request printing its
    line - a buffer flushed mid-line or another thread's line in between tears lines apart.
    """
    try:
        if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, as Powertools honours it
            return
        line = json.dumps(metrics.serialize(), separators=(",", ":"))
    except SchemaValidationError as error:
        _log.warning("metrics dropped: %s", error)
        return
    finally:
        metrics.clear(keep_dimensions=keep_dimensions)
    _print(line)


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _flush(invocation: _InvocationMetrics) -> None:
    metrics = invocation.metrics
    if metrics is None or not metrics.metrics:
        return
    _write(metrics)


def _cold_start(function_name: str, correlation_id: str | None) -> None:
    # Powertools' `add_cold_start_metric` (once per cold start): its own line, dimensions
    # function_name and service; plus, as on every other line, the invocation's correlation id
    # (metadata: searchable in the logs, not a dimension).
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    try:
        if is_metrics_disabled():
            return
        metrics.add_dimension(name="function_name", value=function_name)
        metrics.add_metric(name=COLD_START, unit=MetricUnit.Count, value=1)
        if correlation_id is not None:
            metrics.add_metadata(key="correlation_id", value=correlation_id)
        line = json.dumps(metrics.serialize_metric_set(), separators=(",", ":"))
    except (*_REFUSED_METRIC, SchemaValidationError) as error:
        _log.warning("cold start metric dropped: %s", error)
        return
    _print(line)


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


def _log_failure(event: Any, error: Exception) -> None:
    """The "invocation failed" line of an exception escaping a handler.

    A ServiceUnavailableError is a fault the code expects and names (a store that does not
    answer, a store URI its driver refuses: `lucid.store.unusable`), raised with our own text:
    one line with its class, detail, route and client, no traceback (its frames say nothing an
    operator can act on, and repeat on every invocation while the store is down). Anything else
    is a bug: its traceback is kept.
    """
    if not isinstance(error, ServiceUnavailableError):
        _log.exception("invocation failed")
        return
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    http = request_context.get("http") if isinstance(request_context, dict) else None
    _log.error(
        "invocation failed",
        extra={
            "error": type(error).__name__,
            "detail": error.detail,
            "route": event.get("routeKey") if isinstance(event, dict) else None,
            "source_ip": http.get("sourceIp") if isinstance(http, dict) else None,
        },
    )


def instrument(handler: Handler) -> Handler:
    """`handler` with its invocations' log keys and metrics (see the module docstring)."""
    invocations = itertools.count()  # next() is atomic: one cold start even if two race

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        cold_start = next(invocations) == 0
        keys = _invocation_keys(event, context, cold_start)
        _keys.thread_safe_append_keys(**keys)
        invocation = _InvocationMetrics(keys["correlation_id"], keys["function_name"])
        token = _current.set(invocation)
        try:
            return handler(event, context)
        except Exception as error:
            # The runtime reports it as plain text with Lambda's request id only, and API
            # Gateway answers 500: this line is what joins the failure to the request.
            _log_failure(event, error)
            # The runtime's report (errorMessage, the traceback) is written without our
            # handler: an exception whose text holds a token or a secret reaches it masked.
            shown = masked_exception(error, _masking.mask)
            if shown is not error:
                raise shown  # noqa: B904  # its context, the original, is suppressed
            raise
        finally:
            _current.reset(token)
            if cold_start and context is not None:
                _cold_start(
                    str(getattr(context, "function_name", "") or "unknown"),
                    invocation.correlation_id,
                )
                if _sinks:
                    _tell_sinks(invocation.function, COLD_START)
            _flush(invocation)
            _keys.thread_safe_clear_keys()

    return cast(Handler, invoke)
