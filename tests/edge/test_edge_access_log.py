"""The access line: the template's AccessLogSettings.Format rendered per answer, always JSON."""

from __future__ import annotations

import calendar
import io
import json
import logging
import time
from typing import Any, TextIO

import pytest

from lucid_edge import responses
from lucid_edge.access_log import AccessEntry, AccessLog, gateway_messages
from lucid_edge.events import ACCOUNT_ID
from lucid_edge.logs import JsonFormatter, request_id_scope
from lucid_edge.responses import INTERNAL_ERROR
from lucid_edge.template import load_template
from tests.edge.conftest import REAL_TEMPLATE

TEMPLATE_FORMAT = load_template(REAL_TEMPLATE).api.access_log_format
NOT_FOUND_BODY = b'{"message":"Not Found"}'


def _scope(**changes: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/users/me",
        "http_version": "1.1",
        "client": ("10.1.2.3", 50000),
        "headers": [(b"host", b"api.example.com"), (b"user-agent", b"curl/8")],
    }
    scope.update(changes)
    return scope


def _log(fmt: str | None, stream: TextIO | None = None) -> AccessLog:
    return AccessLog(
        fmt, api_id="HttpApi", stage="dev", gateway_messages={404: "Not Found"}, stream=stream
    )


def test_the_templates_format_renders_to_json_with_every_field() -> None:
    # GIVEN a request the authorizer let through and the function answered
    entry = AccessEntry(_scope(), "req-1")
    entry.route_key = "ANY /users/me"
    entry.authorized(time.monotonic(), None, {"lambda": {"user_id": "u-1"}})
    entry.integrated(time.monotonic(), 200, None, 200)
    # WHEN its line is rendered with the template's own Format
    line = json.loads(_log(TEMPLATE_FORMAT).render(entry, 200, 42, 0))
    # THEN it holds API Gateway's fields with this request's values
    assert line["requestId"] == "req-1"
    assert line["ip"] == "10.1.2.3"
    assert line["routeKey"] == "ANY /users/me"
    assert (line["status"], line["responseLength"]) == ("200", "42")
    assert line["integrationLatency"].isdigit()
    assert line["authorizerLatency"].isdigit()
    assert (line["integrationStatus"], line["authorizerStatus"], line["userId"]) == (
        "200",
        "200",
        "u-1",
    )
    assert (line["authorizerError"], line["integrationError"], line["errorMessage"]) == (
        "-",
        "-",
        "-",
    )


def test_an_answer_the_edge_gave_itself_has_its_message_and_no_integration() -> None:
    fmt = (
        '{"id":"$context.requestId","route":"$context.routeKey","status":"$context.status",'
        '"error":"$context.error.message","quoted":$context.error.messageString,'
        '"integration":"$context.integrationLatency","time":"$context.requestTime",'
        '"epoch":"$context.requestTimeEpoch","method":"$context.httpMethod",'
        '"path":"$context.path","protocol":"$context.protocol","ua":"$context.identity.userAgent",'
        '"domain":"$context.domainName","prefix":"$context.domainPrefix",'
        '"stage":"$context.stage","api":"$context.apiId","unknown":"$context.nothing.here"}'
    )
    entry = AccessEntry(_scope(path="/nowhere"), "req-2")
    line = json.loads(_log(fmt).render(entry, 404, len(NOT_FOUND_BODY), 404))
    assert line["route"] == "-"  # no route matched
    assert (line["status"], line["error"], line["quoted"]) == ("404", "Not Found", "Not Found")
    assert line["integration"] == "-"
    assert line["time"].endswith(" +0000")
    assert abs(int(line["epoch"]) - time.time() * 1000) < 60_000
    assert (line["method"], line["path"], line["protocol"]) == ("GET", "/nowhere", "HTTP/1.1")
    assert (line["ua"], line["domain"], line["prefix"]) == ("curl/8", "api.example.com", "api")
    assert (line["stage"], line["api"], line["unknown"]) == ("dev", "HttpApi", "-")


# Every variable the edge fills in (lucid_edge.access_log's docstring), each under its own name.
EVERY_VARIABLE = [
    "requestId",
    "extendedRequestId",
    "requestTime",
    "requestTimeEpoch",
    "httpMethod",
    "path",
    "protocol",
    "routeKey",
    "stage",
    "apiId",
    "accountId",
    "domainName",
    "domainPrefix",
    "identity.sourceIp",
    "identity.userAgent",
    "status",
    "responseLength",
    "responseLatency",
    "error.message",
    "authorizer.latency",
    "authorizer.status",
    "authorizer.error",
    "authorizer.user_id",
    "integrationLatency",
    "integration.latency",
    "integrationStatus",
    "integration.integrationStatus",
    "integration.status",
    "integrationErrorMessage",
    "integration.error",
    "awsEndpointRequestId",
    "integration.requestId",
    "other.user_id",
]
EVERY_FORMAT = "{" + ",".join(f'"{v}":"$context.{v}"' for v in EVERY_VARIABLE) + "}"


def test_every_variable_has_this_requests_value_and_dash_where_it_has_none() -> None:
    # GIVEN a request answered at 2026-03-04 05:06:07.5 UTC, 3,000 s after it arrived, whose
    # authorizer took 1,000 s and whose invocation took 2,000 s and failed (latencies long
    # enough that a per-mille error in them shows)
    scope = _scope(method="POST", http_version="2", headers=[(b"user-agent", b"na\xefve/1")])
    scope["headers"].append((b"host", b"abc.execute-api.example.com"))
    began = time.monotonic()
    entry = AccessEntry(scope, "req-9")
    entry.epoch = calendar.timegm((2026, 3, 4, 5, 6, 7)) + 0.5
    entry.started -= 3_000
    entry.route_key = "POST /users/me"
    entry.authorized(time.monotonic() - 1_000, None, {"lambda": {"user_id": "u-9"}})
    entry.integrated(time.monotonic() - 2_000, 200, "boom", 502)
    entry.endpoint_request_id = "lambda-1"
    text = _log(EVERY_FORMAT).render(entry, 500, 35, 404)
    line = json.loads(text)
    # THEN each variable holds its value, as API Gateway fills it in
    latencies = {key: int(line.pop(key)) for key in ("responseLatency", "authorizer.latency")}
    latencies["integration"] = int(line.pop("integrationLatency"))
    assert line.pop("integration.latency") == str(latencies["integration"])
    since = round((time.monotonic() - began) * 1000) + 1  # ms the test itself took
    assert 3_000_000 <= latencies["responseLatency"] <= 3_000_000 + since
    assert 1_000_000 <= latencies["authorizer.latency"] <= 1_000_000 + since
    assert 2_000_000 <= latencies["integration"] <= 2_000_000 + since
    assert line == {
        "requestId": "req-9",
        "extendedRequestId": "req-9",
        "requestTime": "04/Mar/2026:05:06:07 +0000",
        "requestTimeEpoch": str(calendar.timegm((2026, 3, 4, 5, 6, 7)) * 1000 + 500),
        "httpMethod": "POST",
        "path": "/users/me",
        "protocol": "HTTP/2",
        "routeKey": "POST /users/me",
        "stage": "dev",
        "apiId": "HttpApi",
        "accountId": ACCOUNT_ID,
        "domainName": "abc.execute-api.example.com",
        "domainPrefix": "abc",
        "identity.sourceIp": "10.1.2.3",
        "identity.userAgent": "na\xefve/1",
        "status": "500",
        "responseLength": "35",
        "error.message": "Not Found",
        "authorizer.status": "200",
        "authorizer.error": "-",
        "authorizer.user_id": "u-9",
        "integrationStatus": "200",
        "integration.integrationStatus": "200",
        "integration.status": "502",
        "integrationErrorMessage": "boom",
        "integration.error": "boom",
        "awsEndpointRequestId": "lambda-1",
        "integration.requestId": "lambda-1",
        "other.user_id": "-",  # not a variable: only authorizer.<key> reads the context
    }
    # AND a printable value is pasted as it is, as AWS does (only what breaks JSON is escaped)
    assert '"identity.userAgent":"na\xefve/1"' in text
    # GIVEN a request with nothing but a method, a path and an empty User-Agent, answered
    # before any step
    bare_scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"user-agent", b"")]}
    bare = AccessEntry(bare_scope, "req-10")
    line = json.loads(_log(EVERY_FORMAT).render(bare, 404, 23, 0))
    # THEN what it did not bring or reach is "-", the source IP and protocol as the edge serves
    assert (line["identity.sourceIp"], line["protocol"]) == ("127.0.0.1", "HTTP/1.1")
    unknown = {v for v in EVERY_VARIABLE if line[v] == "-"}
    assert unknown == set(EVERY_VARIABLE) - {
        "requestId", "extendedRequestId", "requestTime", "requestTimeEpoch", "httpMethod",
        "path", "protocol", "stage", "apiId", "accountId", "identity.sourceIp", "status",
        "responseLength", "responseLatency",
    }  # fmt: skip
    # AND an authorizer's refusal is not its failure, and a function that never answered (its
    # reserved concurrency in use) has no statusCode
    refused = AccessEntry(_scope(), "req-11")
    refused.authorized(time.monotonic(), responses.FORBIDDEN, None)
    throttled = AccessEntry(_scope(), "req-12")
    throttled.integrated(time.monotonic(), 429, "Rate Exceeded.")
    fmt = (
        '{"a":"$context.authorizer.status","e":"$context.authorizer.error",'
        '"i":"$context.integrationStatus","s":"$context.integration.status",'
        '"m":$context.error.messageString}'
    )
    assert json.loads(_log(fmt).render(refused, 403, 23, 0)) == {
        "a": "403", "e": "-", "i": "-", "s": "-", "m": "-",
    }  # fmt: skip
    assert json.loads(_log(fmt).render(throttled, 500, 35, 0)) == {
        "a": "-", "e": "-", "i": "429", "s": "-", "m": "-",
    }  # fmt: skip


@pytest.mark.parametrize("month", range(1, 13))
def test_the_request_time_is_clf_in_utc_with_each_months_name(month: int) -> None:
    # $context.requestTime: "CLF-formatted request time (dd/MMM/yyyy:HH:mm:ss +-hhmm)"
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    entry = AccessEntry(_scope(), "r")
    entry.epoch = calendar.timegm((2026, month, month, month, month, month)) + 0.5
    line = json.loads(_log('{"t":"$context.requestTime"}').render(entry, 200, 0, 0))
    day = f"{month:02d}"
    assert line["t"] == f"{day}/{names[month - 1]}/2026:{day}:{day}:{day} +0000"


def test_each_answer_the_edge_gives_itself_logs_its_message() -> None:
    # `$context.error.message` of every answer the edge gives without a function: its body's
    # message (README: "errorMessage is API Gateway's message when it answered by itself")
    log = AccessLog(
        '{"error":"$context.error.message"}',
        api_id="HttpApi",
        stage="dev",
        gateway_messages=gateway_messages(),
    )
    own = [
        value
        for value in vars(responses).values()
        if isinstance(value, responses.HttpResponse) and value.status >= 400
    ]
    assert len(own) == 9
    for answer in own:
        line = json.loads(log.render(AccessEntry(_scope(), "r"), answer.status, 0, id(answer)))
        assert line["error"] == json.loads(answer.body)["message"], answer.status


def test_a_format_folded_over_lines_renders_as_one_line_keeping_its_text() -> None:
    # GIVEN a Format as YAML folding leaves it: line breaks and runs of spaces between fields
    fmt = '{"stage": "$context.stage",\n  "note": "two   words"}'
    # THEN its line is one line, each run of white space one space, as API Gateway's
    line = _log(fmt).render(AccessEntry(_scope(), "r"), 200, 0, 0)
    assert line == '{"stage": "dev", "note": "two words"}'


def test_values_that_would_break_the_json_are_escaped() -> None:
    # GIVEN a path holding a backslash, a user agent holding quotes and a host holding a control
    # character (AWS pastes them raw)
    headers = [(b"user-agent", b'x"}, "evil": "1'), (b"host", b"api\tx")]
    scope = _scope(path="/a\\b", headers=headers)
    fmt = '{"path":"$context.path","ua":"$context.identity.userAgent","host":"$context.domainName"}'
    line = json.loads(_log(fmt).render(AccessEntry(scope, "r"), 404, 0, 0))
    assert line == {"path": "/a\\b", "ua": 'x"}, "evil": "1', "host": "api\tx"}


def test_authorizer_context_values_and_errors() -> None:
    fmt = (
        '{"user":"$context.authorizer.user_id","status":"$context.authorizer.status",'
        '"error":"$context.authorizer.error","latency":"$context.authorizer.latency",'
        '"missing":"$context.authorizer.nope"}'
    )
    allowed = AccessEntry(_scope(), "r1")
    allowed.authorized(time.monotonic(), None, {"lambda": {"user_id": "u-9"}})
    assert json.loads(_log(fmt).render(allowed, 200, 2, 0))["user"] == "u-9"
    failed = AccessEntry(_scope(), "r2")
    failed.authorized(time.monotonic(), INTERNAL_ERROR, None)
    line = json.loads(_log(fmt).render(failed, 500, 35, 0))
    assert (line["user"], line["status"], line["error"], line["missing"]) == (
        "-",
        "500",
        "the authorizer failed",
        "-",
    )
    assert line["latency"].isdigit()


def test_without_a_format_the_default_line_is_written_and_flushed() -> None:
    # GIVEN a buffered stream, as standard output is when piped to a file or a log collector
    written = io.BytesIO()
    stream = io.TextIOWrapper(written, encoding="utf-8")
    _log(None, stream).write(AccessEntry(_scope(), "r3"), 404, 23, 404)
    # THEN the line is out at once, not when the buffer fills
    text = written.getvalue().decode()
    line = json.loads(text)
    assert text.endswith("\n")
    assert (line["requestId"], line["status"], line["errorMessage"]) == ("r3", "404", "Not Found")


def test_the_edges_own_lines_are_json_with_the_request_id() -> None:
    # GIVEN the edge's formatter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("lucid_edge.test_access_log")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # WHEN a line is logged while a request is handled, with a traceback
        with request_id_scope("req-7"):
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("%s raised", "UsersFunction")
        logger.warning("outside any request")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    # THEN each record is one JSON line; the traceback is a field, the id only inside the request
    assert (first["message"], first["correlation_id"], first["level"]) == (
        "UsersFunction raised",
        "req-7",
        "ERROR",
    )
    assert first["exception_name"] == "ValueError"
    assert "boom" in first["exception"]
    assert "correlation_id" not in second


def test_log_level_warning_quiets_the_access_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN LOG_LEVEL=WARNING, which also quiets the functions' access lines (the benchmarks)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    stream = io.StringIO()
    _log(None, stream).write(AccessEntry(_scope(), "r4"), 404, 23, 404)
    assert stream.getvalue() == ""


@pytest.mark.parametrize("level", [None, "debug", "INFO", "VERBOSE"])
def test_lines_go_to_standard_output_unless_the_log_level_is_above_info(
    level: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN LOG_LEVEL unset, at or below INFO, or a name logging does not know
    if level is None:
        monkeypatch.delenv("LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("LOG_LEVEL", level)
    # WHEN a line is written by an access log given no stream
    log = AccessLog(None, api_id="HttpApi", stage="dev", gateway_messages={})
    log.write(AccessEntry(_scope(), "r5"), 200, 2, 0)
    # THEN it is on standard output
    assert json.loads(capsys.readouterr().out)["requestId"] == "r5"
