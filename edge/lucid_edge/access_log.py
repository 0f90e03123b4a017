"""The edge's access log: one line per answer, in the template's `AccessLogSettings.Format`.

API Gateway writes an access line for every request a stage answers, whoever answered it (a
route, the authorizer, the throttle, a missing route), when the stage has `AccessLogSettings`;
the line is the stage's `Format` with each `$context.<variable>` replaced by the request's value,
and `-` where a variable has none. The edge does the same with the template's Format, so the
lines an operator reads locally are the lines CloudWatch would hold. Two differences, both on the
safe side: values are JSON-escaped (AWS pastes them raw, so a quote in a path breaks the JSON),
and the line always parses, so a test can read it.

Variables (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging-variables.html):
request (`requestId`, `extendedRequestId`, `requestTime`, `requestTimeEpoch`, `httpMethod`,
`path`, `protocol`, `routeKey`, `stage`, `apiId`, `accountId`, `domainName`, `domainPrefix`,
`identity.sourceIp`, `identity.userAgent`), answer (`status`, `responseLength`,
`responseLatency`, `error.message`, `error.messageString`), authorizer (`authorizer.latency`,
`authorizer.status`, `authorizer.error`, `authorizer.<context key>`) and integration
(`integrationLatency` = `integration.latency`, `integrationStatus` =
`integration.integrationStatus`: Lambda's own status, `integration.status`: the function's
statusCode, `integrationErrorMessage` = `integration.error`). Any other variable is `-`.

The lines are INFO lines of the edge: `LOG_LEVEL=WARNING` (or above), which quiets the
functions' access lines, quiets these too (the benchmarks run that way).

Nothing secret reaches a line: no variable reads a header other than User-Agent and Host, the
query string or the body, and the authorizer's context holds ids (user, sign-in, token id), not
credentials.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from lucid_edge import responses
from lucid_edge.events import ACCOUNT_ID
from lucid_edge.responses import HttpResponse

__all__ = ["AccessEntry", "AccessLog", "gateway_messages"]

# Used where the template sets no AccessLogSettings.Format (the edge still writes a line per
# request: a local run is for reading what happened). The keys are infra/template.yaml's.
DEFAULT_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
    '"requestTime":"$context.requestTime","httpMethod":"$context.httpMethod",'
    '"path":"$context.path","protocol":"$context.protocol","routeKey":"$context.routeKey",'
    '"status":"$context.status","responseLength":"$context.responseLength",'
    '"responseLatency":"$context.responseLatency",'
    '"integrationLatency":"$context.integrationLatency",'
    '"integrationStatus":"$context.integrationStatus",'
    '"integrationError":"$context.integrationErrorMessage",'
    '"authorizerLatency":"$context.authorizer.latency",'
    '"authorizerStatus":"$context.authorizer.status",'
    '"authorizerError":"$context.authorizer.error",'
    '"errorMessage":"$context.error.message","userAgent":"$context.identity.userAgent"}'
)
# `$context.authorizer.error` of an authorizer that raised, timed out or answered nonsense (the
# edge's own log line of the same request id says which).
AUTHORIZER_FAILED = "the authorizer failed"
_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_AUTHORIZER_OWN = frozenset({"latency", "status", "error"})
# Variables whose value is a JSON string with its quotes, placed unquoted in a format.
_QUOTED = frozenset({"error.messageString"})
_NONE = "-"


def gateway_messages() -> dict[int, str]:
    """`id()` of each answer the edge gives by itself, as API Gateway would -> its message."""
    answers = (
        responses.NOT_FOUND,
        responses.UNAUTHORIZED,
        responses.FORBIDDEN,
        responses.TOO_LARGE,
        responses.REQUEST_TIMEOUT,
        responses.HEADERS_TOO_LARGE,
        responses.TOO_MANY_REQUESTS,
        responses.INTERNAL_ERROR,
        responses.UNAVAILABLE,
    )
    return {id(answer): str(json.loads(answer.body)["message"]) for answer in answers}


class AccessEntry:
    """What one request leaves for its access line, filled in as the request goes."""

    __slots__ = (
        "authorizer_context",
        "authorizer_error",
        "authorizer_ms",
        "authorizer_status",
        "endpoint_request_id",
        "epoch",
        "function_status",
        "integration_error",
        "integration_ms",
        "integration_status",
        "request_id",
        "route_key",
        "scope",
        "started",
    )

    def __init__(self, scope: Mapping[str, Any], request_id: str) -> None:
        self.scope = scope
        self.request_id = request_id
        self.started = time.monotonic()
        self.epoch = time.time()
        self.route_key: str | None = None
        self.authorizer_ms: float | None = None
        self.authorizer_status: int | None = None
        self.authorizer_error: str | None = None
        self.authorizer_context: Mapping[str, Any] | None = None
        self.integration_ms: float | None = None
        self.integration_status: int | None = None  # Lambda's: 200 once the function ran
        self.integration_error: str | None = None
        self.function_status: int | None = None  # the statusCode the function answered
        # The Lambda request id of the function's invocation (its context's aws_request_id): what
        # its START/END/REPORT and "Task timed out" lines carry instead of our correlation id.
        self.endpoint_request_id: str | None = None

    def authorized(self, started: float, refusal: HttpResponse | None, authorizer: Any) -> None:
        """Record the authorizer step that began at `started` (monotonic): its refusal, or None
        and the event's `requestContext.authorizer` it filled in."""
        self.authorizer_ms = (time.monotonic() - started) * 1000
        if refusal is not None:
            self.authorizer_status = refusal.status
            if refusal.status >= 500:
                self.authorizer_error = AUTHORIZER_FAILED
            return
        self.authorizer_status = 200
        context = authorizer.get("lambda") if isinstance(authorizer, Mapping) else None
        if isinstance(context, Mapping):
            self.authorizer_context = context

    def integrated(
        self,
        started: float,
        lambda_status: int | None,
        error: str | None,
        function_status: int | None = None,
    ) -> None:
        """Record the invocation that began at `started` (monotonic): Lambda's status (200 once
        the function ran, whatever it did), the integration's error, the function's statusCode."""
        self.integration_ms = (time.monotonic() - started) * 1000
        self.integration_status = lambda_status
        self.integration_error = error
        self.function_status = function_status


@functools.lru_cache(maxsize=4)
def _clf_time(second: int) -> str:
    t = time.gmtime(second)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def _request_time(epoch: float) -> str:
    """CLF time (`02/Dec/2026:22:07:01 +0000`), formatted once per second."""
    return _clf_time(int(epoch))


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _milliseconds(value: float | None) -> int | None:
    return None if value is None else round(value)


class _Answer:
    """One rendered request: the entry plus what the edge answered."""

    __slots__ = ("entry", "error_message", "length", "stage", "status")

    def __init__(
        self, entry: AccessEntry, status: int, length: int, error_message: str | None, stage: str
    ) -> None:
        self.entry, self.status, self.length = entry, status, length
        self.error_message, self.stage = error_message, stage


def _host(answer: _Answer) -> str | None:
    return _header(answer.entry.scope, b"host")


_Getter = Callable[[_Answer], Any]
_VARIABLES: dict[str, _Getter] = {
    "requestId": lambda a: a.entry.request_id,
    "extendedRequestId": lambda a: a.entry.request_id,
    "requestTime": lambda a: _request_time(a.entry.epoch),
    "requestTimeEpoch": lambda a: int(a.entry.epoch * 1000),
    "httpMethod": lambda a: a.entry.scope.get("method"),
    "path": lambda a: a.entry.scope.get("path"),
    "protocol": lambda a: f"HTTP/{a.entry.scope.get('http_version', '1.1')}",
    "routeKey": lambda a: a.entry.route_key,
    "stage": lambda a: a.stage,
    "accountId": lambda a: ACCOUNT_ID,
    "domainName": _host,
    "domainPrefix": lambda a: (_host(a) or "").split(".", 1)[0] or None,
    "identity.sourceIp": lambda a: (a.entry.scope.get("client") or ("127.0.0.1",))[0],
    "identity.userAgent": lambda a: _header(a.entry.scope, b"user-agent"),
    "status": lambda a: a.status,
    "responseLength": lambda a: a.length,
    "responseLatency": lambda a: round((time.monotonic() - a.entry.started) * 1000),
    "error.message": lambda a: a.error_message,
    "error.messageString": lambda a: a.error_message,
    "authorizer.latency": lambda a: _milliseconds(a.entry.authorizer_ms),
    "authorizer.status": lambda a: a.entry.authorizer_status,
    "authorizer.error": lambda a: a.entry.authorizer_error,
    "integrationLatency": lambda a: _milliseconds(a.entry.integration_ms),
    "integration.latency": lambda a: _milliseconds(a.entry.integration_ms),
    "integrationStatus": lambda a: a.entry.integration_status,
    "integration.integrationStatus": lambda a: a.entry.integration_status,
    "integration.status": lambda a: a.entry.function_status,
    "integrationErrorMessage": lambda a: a.entry.integration_error,
    # "The AWS endpoint's request ID from the x-amz-request-id or x-amzn-requestId header"
    # (http-api-logging-variables.html): Lambda's Invoke answers the invocation's request id.
    "awsEndpointRequestId": lambda a: a.entry.endpoint_request_id,
    "integration.requestId": lambda a: a.entry.endpoint_request_id,
    "integration.error": lambda a: a.entry.integration_error,
}


def _authorizer_property(key: str) -> _Getter:
    def value(answer: _Answer) -> Any:
        context = answer.entry.authorizer_context
        return None if context is None else context.get(key)

    return value


def _getter(variable: str, api_id: str) -> _Getter:
    if variable == "apiId":
        return lambda a: api_id
    known = _VARIABLES.get(variable)
    if known is not None:
        return known
    prefix, _, key = variable.partition(".")
    if prefix == "authorizer" and key and "." not in key and key not in _AUTHORIZER_OWN:
        return _authorizer_property(key)
    return lambda a: None


def _escaped(value: Any) -> str:
    """`value` as it may stand between the quotes of a JSON string."""
    if value is None or value == "":
        return _NONE
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text  # most values: nothing to escape
    return json.dumps(text)[1:-1]


def _quoted(value: Any) -> str:
    """`value` as a JSON string, quotes included."""
    return json.dumps(_NONE if value is None or value == "" else str(value))


class AccessLog:
    """Writes one line per answer, rendered from a format of `$context` variables."""

    def __init__(
        self,
        fmt: str | None,
        *,
        api_id: str,
        stage: str,
        gateway_messages: Mapping[int, str],
        stream: TextIO | None = None,
    ) -> None:
        """`gateway_messages` maps `id()` of the edge's own error responses to their message
        (what `$context.error.message` holds when the edge answered by itself)."""
        text = " ".join((fmt or DEFAULT_FORMAT).split())  # YAML folding leaves line breaks
        self._literals: list[str] = []
        self._getters: list[tuple[_Getter, Callable[[Any], str]]] = []
        position = 0
        for match in _VARIABLE.finditer(text):
            variable = match.group(1)
            self._literals.append(text[position : match.start()])
            encode = _quoted if variable in _QUOTED else _escaped
            self._getters.append((_getter(variable, api_id), encode))
            position = match.end()
        self._tail = text[position:]
        self._stage = stage
        self._messages = gateway_messages
        # Bound now, as the functions' log handler is at import: in a worker, the process's
        # standard output.
        self._stream = stream or sys.stdout
        level = logging.getLevelName(os.environ.get("LOG_LEVEL", "INFO").upper())
        self.enabled = not isinstance(level, int) or level <= logging.INFO

    def render(self, entry: AccessEntry, status: int, length: int, response_id: int) -> str:
        """The line for `entry` answered with `status` and a body of `length` bytes
        (`response_id`: `id()` of the response object sent)."""
        answer = _Answer(entry, status, length, self._messages.get(response_id), self._stage)
        parts: list[str] = []
        for literal, (getter, encode) in zip(self._literals, self._getters, strict=True):
            parts.append(literal)
            parts.append(encode(getter(answer)))
        parts.append(self._tail)
        return "".join(parts)

    def write(self, entry: AccessEntry, status: int, length: int, response_id: int) -> None:
        """Render the line and write it to the log stream (stdout, as Lambda's logs are)."""
        if not self.enabled:
            return
        self._stream.write(self.render(entry, status, length, response_id) + "\n")
        self._stream.flush()
