"""Payload 2.0 events: the golden event from tests/events, body encoding, absent fields."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lucid_edge.authorizer import Authorizers, authorizer_event, identity_values
from lucid_edge.events import EventBuilder, LambdaContext, is_text_content_type, new_request_id
from lucid_edge.model import AuthorizerSpec

EVENTS = Path(__file__).resolve().parents[1] / "events"
_NONDETERMINISTIC = {"requestId", "time", "timeEpoch", "x-amzn-trace-id"}


def load_event(name: str) -> dict[str, Any]:
    """An API Gateway event from tests/events."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def _build(**overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": "GET",
        "path": "/items/42",
        "raw_query": "parameter1=value1&parameter1=value2&parameter2=value",
        "raw_headers": [
            (b"host", b"127.0.0.1:3000"),
            (b"accept", b"application/json"),
            (b"content-length", b"0"),
            (b"header1", b"value1"),
            (b"header2", b"value1"),
            (b"header2", b"value2"),
            (b"cookie", b"cookie1=value1; cookie2=value2"),
            (b"user-agent", b"agent"),
        ],
        "http_version": "1.1",
        "source_ip": "127.0.0.1",
        "server_port": "3000",
        "route_key": "GET /items/{id}",
        "path_parameters": {"id": "42"},
        "body": b"",
        "request_id": new_request_id(),
    }
    request.update(overrides)
    return EventBuilder("api-id", "$default").build(**request)


def _compare(built: Any, golden: Any, where: str = "event") -> None:
    assert type(built) is type(golden), where
    if isinstance(golden, dict):
        assert set(built) == set(golden), where
        for key, value in golden.items():
            if key not in _NONDETERMINISTIC:
                _compare(built[key], value, f"{where}.{key}")
    else:
        assert built == golden, where


def test_built_event_matches_the_golden_event_field_by_field() -> None:
    built = _build()
    _compare(built, load_event("http_api_v2_proxy.json"))
    context = built["requestContext"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{15}=", context["requestId"])
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert abs(context["timeEpoch"] / 1000 - __import__("time").time()) < 5
    # AND `time` names `timeEpoch`'s second, month included (API Gateway's `12/Mar/2020:...`)
    stamp = datetime.strptime(context["time"], "%d/%b/%Y:%H:%M:%S %z")
    assert stamp.timestamp() == context["timeEpoch"] // 1000
    # AND the trace id is an X-Ray one (version 1, the epoch second in 8 hex digits, 24 more)
    trace = re.fullmatch(r"Root=1-([0-9a-f]{8})-[0-9a-f]{24}", built["headers"]["x-amzn-trace-id"])
    assert trace is not None
    assert abs(int(trace[1], 16) - context["timeEpoch"] // 1000) <= 1


def test_authorizer_event_matches_the_golden_authorizer_event() -> None:
    event = _build(
        raw_query="",
        raw_headers=[
            (b"host", b"127.0.0.1:3000"),
            (b"authorization", b"Bearer token"),
            (b"user-agent", b"agent"),
        ],
    )
    arn = EventBuilder("api-id", "$default").route_arn("GET", "/items/42")
    built = authorizer_event(event, arn, ("Bearer token",))
    _compare(built, load_event("http_api_v2_authorizer.json"))


def test_empty_fields_are_absent_as_in_aws() -> None:
    event = _build(raw_query="", raw_headers=[], path_parameters=None)
    for absent in ("cookies", "queryStringParameters", "pathParameters", "body", "stageVariables"):
        assert absent not in event
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["userAgent"] == ""
    assert event["requestContext"]["domainName"] == "localhost"


def test_client_forwarded_for_is_kept_but_source_ip_is_the_peer() -> None:
    event = _build(raw_headers=[(b"x-forwarded-for", b"6.6.6.6")], source_ip="10.0.0.9")
    assert event["requestContext"]["http"]["sourceIp"] == "10.0.0.9"
    assert event["headers"]["x-forwarded-for"] == "6.6.6.6, 10.0.0.9"


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/xml", True),
        ("application/javascript", True),
        ("application/x-www-form-urlencoded", False),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_body_encoding_follows_content_type(content_type: str | None, text: bool) -> None:
    headers = [(b"content-type", content_type.encode())] if content_type else []
    event = _build(raw_headers=headers, body=b"a=1&b=2")
    assert event["isBase64Encoded"] is not text
    body = event["body"] if text else base64.b64decode(event["body"]).decode()
    assert body == "a=1&b=2"
    assert is_text_content_type(content_type) is text


def test_text_body_that_is_not_utf8_arrives_base64() -> None:
    event = _build(raw_headers=[(b"content-type", b"text/plain")], body=b"\xff\xfe")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


def test_domain_cache_stays_bounded() -> None:
    builder = EventBuilder("api", "s")
    for i in range(300):
        event = builder.build(
            method="GET", path="/", raw_query="", raw_headers=[(b"host", f"h{i}.x".encode())],
            http_version="1.1", source_ip="1.1.1.1", server_port="1", route_key="$default",
            path_parameters=None, body=b"", request_id="r",
        )  # fmt: skip
        assert event["requestContext"]["domainPrefix"] == f"h{i}"
    assert len(builder._domains) <= 257


def test_lambda_context_counts_down_from_the_timeout() -> None:
    context = LambdaContext("EchoFunction", 256, 2.0)
    assert 1900 < context.get_remaining_time_in_millis() <= 2000
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn.endswith(":function:EchoFunction")
    assert context.log_group_name == "/aws/lambda/EchoFunction"
    assert "[$LATEST]" in context.log_stream_name
    assert LambdaContext("F", 1, 0).get_remaining_time_in_millis() == 0
    # as the Python runtime builds it: the memory size is the string of its environment variable
    assert context.memory_limit_in_mb == "256"
    assert context.identity.cognito_identity_id is None
    assert context.client_context is None
    assert context.tenant_id is None


def test_a_cookie_identity_source_is_the_requests_cookie_header() -> None:
    # GIVEN an authorizer whose identity source is $request.header.Cookie, and a request's
    # payload 2.0 event (the Cookie header moves into `cookies`)
    spec = AuthorizerSpec("C", "Fn", ("cookie",), (), 300, True)
    event = _build(raw_headers=[(b"cookie", b"session=abc; theme=dark")])
    assert "cookie" not in event["headers"]
    # THEN API Gateway finds the identity in the request (it is not a 401)
    assert identity_values(spec, event) == ("session=abc; theme=dark",)
    # AND a request without cookies has no identity
    del event["cookies"]
    assert identity_values(spec, event) is None


def test_query_parameters_without_a_value_are_kept_as_empty_strings() -> None:
    # GIVEN a query with a bare flag and an empty value beside a plain one
    event = _build(raw_query="flag&empty=&x=1&x=")
    # THEN each is a parameter whose value is empty (a duplicate's empty value joined too), as
    # sam local's builder gives them (werkzeug's request.args keeps blank values)
    assert event["queryStringParameters"] == {"flag": "", "empty": "", "x": "1,"}
    assert event["rawQueryString"] == "flag&empty=&x=1&x="


@pytest.mark.parametrize(
    ("raw_query", "parameters"),
    [
        # sam local (aws-sam-cli 1.170.0) leaves the field out when werkzeug's request.args is
        # empty; the edge gave {}
        ("&", None),
        ("&&", None),
        # one parameter named "", for werkzeug as for parse_qsl
        ("=", {"": ""}),
        ("=1&&", {"": "1"}),
        ("&a=1&", {"a": "1"}),
    ],
)
def test_a_query_of_separators_only_has_no_parameters_as_in_sam_local(
    raw_query: str, parameters: dict[str, str] | None
) -> None:
    # GIVEN a query string made (mostly) of separators
    event = _build(raw_query=raw_query)
    # THEN queryStringParameters is what sam local's event gives, absent when it has none
    assert event.get("queryStringParameters") == parameters
    assert ("queryStringParameters" in event) is (parameters is not None)
    # AND the raw query is passed as sent
    assert event["rawQueryString"] == raw_query


def test_a_plus_in_the_query_is_a_space_in_parameters_and_kept_in_the_raw_query() -> None:
    # GIVEN a query with `+`, `%20` and `%2B` (a plus sent escaped)
    event = _build(raw_query="q=a+b%20c%2Bd&x=1+1")
    # THEN queryStringParameters reads `+` and `%20` as spaces and `%2B` as a plus, as sam
    # local's werkzeug does (README, "Differences from AWS": AWS does not document it)
    assert event["queryStringParameters"] == {"q": "a b c+d", "x": "1 1"}
    # AND rawQueryString, which the functions read through Mangum, is the query as sent
    assert event["rawQueryString"] == "q=a+b%20c%2Bd&x=1+1"


def test_the_route_arn_leaves_a_named_stage_out_of_the_path_only() -> None:
    # GIVEN requests under a named stage, its root included, and under the $default stage
    dev, default = EventBuilder("api-id", "dev"), EventBuilder("api-id", "$default")
    arn = "arn:aws:execute-api:us-east-1:123456789012:api-id"
    # THEN the stage is the ARN's own part and leaves the path, whole segments only...
    assert dev.route_arn("GET", "/dev/health") == f"{arn}/dev/GET/health"
    assert dev.route_arn("GET", "/dev") == f"{arn}/dev/GET/"
    assert dev.route_arn("GET", "/development") == f"{arn}/dev/GET/development"
    # ...while under $default (never in rawPath) a path that merely starts so is a path
    assert default.route_arn("GET", "/$default/x") == f"{arn}/$default/GET/$default/x"


@pytest.mark.parametrize(
    "spec",
    [
        AuthorizerSpec("H", "Fn", ("authorization",), (), 300, True),
        AuthorizerSpec("C", "Fn", ("cookie",), (), 300, True),
        AuthorizerSpec("M", "Fn", ("authorization", "x-api-key"), (), 300, True),
        AuthorizerSpec("Q", "Fn", ("authorization",), ("token",), 300, True),
        AuthorizerSpec("O", "Fn", (), ("token",), 300, True),
    ],
)
def test_the_edge_reads_the_identity_source_as_identity_values_does(spec: AuthorizerSpec) -> None:
    # GIVEN requests with the identity's header and query parameter present, empty or missing,
    # beside others (a cookie, another header)
    requests = []
    for auth in (None, b"", b"Bearer t-1"):
        for key in (None, b"", b"k-1"):
            for query in ("", "token=", "token=q-1", "other=1"):
                for cookie in (None, b"session=abc"):
                    headers = [(b"host", b"api.example.com")]
                    for name, value in ((b"authorization", auth), (b"x-api-key", key)):
                        if value is not None:
                            headers.append((name, value))
                    if cookie is not None:
                        headers.append((b"cookie", cookie))
                    requests.append(_build(raw_headers=headers, raw_query=query))
    authorizers = Authorizers({spec.name: spec})
    # THEN what the edge reads before answering 401 is API Gateway's identity, request by request
    read = [authorizers.identity(spec.name, event) for event in requests]
    assert read == [identity_values(spec, event) for event in requests]
    assert None in read
    assert any(read)
