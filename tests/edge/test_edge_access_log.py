"""The access line: the template's AccessLogSettings.Format rendered per answer, always JSON."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import pytest

from lucid_edge import responses
from lucid_edge.access_log import AccessEntry, AccessLog, gateway_messages
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


def _log(fmt: str | None, stream: io.StringIO | None = None) -> AccessLog:
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


def test_values_that_would_break_the_json_are_escaped() -> None:
    # GIVEN a path and a user agent holding quotes and backslashes (AWS pastes them raw)
    scope = _scope(path='/a"b\\c', headers=[(b"user-agent", b'x"}, "evil": "1')])
    fmt = '{"path":"$context.path","ua":"$context.identity.userAgent"}'
    line = json.loads(_log(fmt).render(AccessEntry(scope, "r"), 404, 0, 0))
    assert line == {"path": '/a"b\\c', "ua": 'x"}, "evil": "1'}


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
    stream = io.StringIO()
    _log(None, stream).write(AccessEntry(_scope(), "r3"), 404, 23, 404)
    line = json.loads(stream.getvalue())
    assert stream.getvalue().endswith("\n")
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
