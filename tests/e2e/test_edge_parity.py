"""The parity table of issue 2, through real HTTP on 127.0.0.1: each row, then the next request."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.edge.harness import RunningEdge, running_edge

pytestmark = pytest.mark.e2e
ALLOWED = "http://allowed.example"


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEdge]:
    with running_edge() as running:
        yield running


def _still_serving(edge: RunningEdge) -> None:
    response = edge.client.get("/echo")
    assert response.status_code == 200
    assert response.json()["who"] == "echo"


def test_no_route_matches_is_404(edge: RunningEdge) -> None:
    response = edge.client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["apigw-requestid"]
    assert edge.client.delete("/echo").status_code == 404  # path exists, method does not


def test_preflight_is_answered_by_the_edge(edge: RunningEdge) -> None:
    headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    response = edge.client.options("/faulty/raise", headers=headers)
    # The function would have failed: the edge answered without invoking it.
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-methods"] == "GET,POST"
    assert response.headers["access-control-allow-headers"] == "authorization,content-type"
    assert response.headers["access-control-max-age"] == "300"
    assert response.headers["access-control-allow-credentials"] == "true"
    _still_serving(edge)


def test_preflight_from_a_disallowed_origin_gets_no_allow_origin(edge: RunningEdge) -> None:
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    response = edge.client.options("/echo", headers=headers)
    assert response.status_code == 204
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_cors_headers_only_with_an_allowed_origin(edge: RunningEdge) -> None:
    allowed = edge.client.get("/echo", headers={"Origin": ALLOWED})
    # The echo function sets its own allow-origin; the configured one replaces it.
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert allowed.headers["access-control-expose-headers"] == "x-request-id"
    no_origin = edge.client.get("/echo")
    assert not [h for h in no_origin.headers if h.startswith("access-control-")]
    evil = edge.client.get("/echo", headers={"Origin": "http://evil.example"})
    assert not [h for h in evil.headers if h.startswith("access-control-")]
    # OPTIONS without Access-Control-Request-Method is an ordinary request (no OPTIONS route).
    assert edge.client.options("/echo", headers={"Origin": ALLOWED}).status_code == 404


def test_request_body_over_10_mb_is_413(edge: RunningEdge) -> None:
    response = edge.client.post("/echo", content=b"x" * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}
    _still_serving(edge)


@pytest.mark.parametrize("action", ["raise", "garbage", "unserialisable", "badbase64"])
def test_function_failure_or_invalid_result_is_502(edge: RunningEdge, action: str) -> None:
    response = edge.client.get(f"/faulty/{action}")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal Server Error"}
    _still_serving(edge)


def test_function_response_over_6_mb_is_502(edge: RunningEdge) -> None:
    assert edge.client.get("/faulty/huge").status_code == 502
    _still_serving(edge)


def test_function_past_its_timeout_is_503(edge: RunningEdge) -> None:
    response = edge.client.get("/faulty/sleep")
    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}
    _still_serving(edge)
    assert edge.client.get("/faulty/other").text == "faulty-app"


@pytest.mark.parametrize(("action", "body"), [("nostatus", {"hello": "world", "n": 1}),
                                              ("string", "plain")])  # fmt: skip
def test_result_without_status_code_is_200_json(
    edge: RunningEdge, action: str, body: object
) -> None:
    response = edge.client.get(f"/faulty/{action}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == body


def test_cookies_and_binary_bodies_reach_the_client(edge: RunningEdge) -> None:
    cookies = edge.client.get("/faulty/cookies")
    assert cookies.status_code == 201
    assert cookies.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    binary = edge.client.get("/faulty/binary")
    assert binary.content == b"\x89PNG\r\n\x00\x01"
    assert binary.headers["content-type"] == "image/png"


def test_the_function_gets_the_payload_2_event_and_context(edge: RunningEdge) -> None:
    response = edge.client.get(
        "/items/42?a=1&a=2",
        headers={"Cookie": "x=1; y=2", "X-Forwarded-For": "6.6.6.6", "User-Agent": "tester"},
    )
    answer = response.json()
    event = answer["event"]
    assert event["routeKey"] == "GET /items/{id}"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["cookies"] == ["x=1", "y=2"]
    assert "cookie" not in event["headers"]
    context = event["requestContext"]
    assert context["http"]["sourceIp"] == "127.0.0.1"  # never the client's X-Forwarded-For
    assert context["http"]["userAgent"] == "tester"
    assert context["stage"] == "$default"
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert answer["context"]["function_name"] == "EchoFunction"
    assert answer["context"]["memory_limit_in_mb"] == 256
    assert 0 < answer["context"]["remaining_ms"] <= 3000
    assert answer["greeting"] == "hello-test"
    assert answer["empty_is_set"] is False


def test_greedy_path_and_binary_request_body(edge: RunningEdge) -> None:
    response = edge.client.put(
        "/files/a/b.bin", content=b"\x00\xff", headers={"Content-Type": "application/octet-stream"}
    )
    event = response.json()["event"]
    assert event["routeKey"] == "ANY /files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b.bin"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xff"
    assert response.json()["body"] == "\x00\xff"
    text = edge.client.post("/echo", json={"k": "v"}).json()
    assert text["event"]["body"] == '{"k":"v"}'
    assert text["event"]["isBase64Encoded"] is False


def test_function_cookies_become_set_cookie_headers(edge: RunningEdge) -> None:
    response = edge.client.get("/echo?cookies=1")
    assert len(response.headers.get_list("set-cookie")) == 2


def test_two_functions_named_app_serve_side_by_side(edge: RunningEdge) -> None:
    assert edge.client.get("/echo").json()["who"] == "echo"
    assert edge.client.get("/faulty/x").text == "faulty-app"
    assert edge.client.get("/echo").json()["who"] == "echo"
