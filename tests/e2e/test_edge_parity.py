"""The parity table (issues 2 and 11), through real HTTP on 127.0.0.1: each row, then the next
request. The answers and their AWS sources are in lucid_edge/responses.py's docstring."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

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
    # GIVEN /echo, routed for GET and POST only: no route takes OPTIONS there
    headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    response = edge.client.options("/echo", headers=headers)
    # THEN the edge answers it from CorsConfiguration, without invoking the function
    assert "who" not in response.text
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-methods"] == "GET,POST"
    assert response.headers["access-control-allow-headers"] == "authorization,content-type"
    assert response.headers["access-control-max-age"] == "300"
    assert response.headers["access-control-allow-credentials"] == "true"
    _still_serving(edge)


def test_a_preflight_an_any_route_takes_reaches_its_function(edge: RunningEdge) -> None:
    # GIVEN ANY routes: "The ANY method matches all methods that you haven't defined for a
    # route" (http-api-develop-routes.html), OPTIONS included (lucid_edge/cors.py's sources)
    headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    # WHEN a browser preflights a path only such a route matches
    echoed = edge.client.options("/files/a/b", headers=headers)
    failed = edge.client.options("/faulty/raise", headers=headers)
    # THEN the route's function answers it, as on AWS: what it returns, or its failure
    assert echoed.status_code == 200
    assert echoed.json()["event"]["requestContext"]["http"]["method"] == "OPTIONS"
    assert echoed.json()["event"]["routeKey"] == "ANY /files/{proxy+}"
    assert echoed.headers["access-control-allow-origin"] == ALLOWED  # an actual request's CORS
    assert "access-control-allow-methods" not in echoed.headers
    assert failed.status_code == 500
    assert failed.json() == {"message": "Internal Server Error"}


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


INTERNAL_ERROR = {"message": "Internal Server Error"}
TOO_LARGE = {"message": "Request Entity Too Large"}
# Lambda's invocation payload limit, and 4.5 MiB: whose base64 text alone is 6 MiB.
LAMBDA_LIMIT = 6_291_456
BINARY_OVER = 4_718_592


def test_request_line_and_header_values_over_10_240_bytes_are_refused(edge: RunningEdge) -> None:
    # GIVEN `GET /echo HTTP/1.1` (18 bytes) and the values of the client's other headers
    base = 18 + sum(len(v) for v in edge.client.headers.values()) + len("127.0.0.1:0000")
    fits = edge.client.get("/echo", headers={"X-Big": "v" * (10_240 - base - 100)})
    assert fits.status_code == 200
    # WHEN they are over the quota THEN the edge refuses them without routing them
    response = edge.client.get("/nowhere", headers={"X-Big": "v" * 10_240})
    assert response.status_code == 431
    assert response.json() == {"message": "Request Header Fields Too Large"}
    _still_serving(edge)


def _raw_head(edge: RunningEdge, request: bytes) -> bytes:
    """The status line of the edge's answer to `request`, sent byte for byte."""
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(request)
        return raw.recv(4096).split(b"\r\n")[0]


def test_request_line_and_header_values_of_exactly_10_240_bytes_pass(edge: RunningEdge) -> None:
    # GIVEN `GET /echo HTTP/1.1` (18 bytes) and the values `h` and `close` (6 bytes): the quota
    # counts 24 bytes besides X-Big's value
    def sized(total: int) -> bytes:
        big = b"v" * (total - 24)
        return b"GET /echo HTTP/1.1\r\nHost: h\r\nX-Big: " + big + b"\r\nConnection: close\r\n\r\n"

    # WHEN they add up to the quota THEN the request is served; one byte more is refused
    assert _raw_head(edge, sized(10_240)) == b"HTTP/1.1 200 OK"
    assert _raw_head(edge, sized(10_241)) == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_a_declared_payload_over_10_mib_is_refused_before_the_authorizer(
    edge: RunningEdge,
) -> None:
    # GIVEN a route with an authorizer and no identity source in the request: API Gateway's
    # payload quota (10 MB, lucid_edge.limits) is checked on the request as it arrives, the
    # authorizer only then, and Lambda's 6 MB after the authorizer
    def declared(size: int) -> bytes:
        return (
            b"POST /protected/size HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size
        )

    # WHEN the declared body is one byte over 10 MiB THEN it is 413 without reading it
    assert _raw_head(edge, declared(10 * 1024 * 1024 + 1)).startswith(b"HTTP/1.1 413 ")
    # AND at exactly 10 MiB the authorizer answers first (401), the body still unread
    assert _raw_head(edge, declared(10 * 1024 * 1024)).startswith(b"HTTP/1.1 401 ")
    _still_serving(edge)


def test_request_body_over_10_mb_is_413(edge: RunningEdge) -> None:
    response = edge.client.post("/echo", content=b"x" * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    _still_serving(edge)


def test_an_event_over_lambdas_6_mb_counts_the_base64_body(edge: RunningEdge) -> None:
    binary = {"Content-Type": "application/octet-stream"}
    # A 4.5 MiB binary body is base64-encoded in the event: 6 MiB, over Lambda's limit.
    response = edge.client.post("/faulty/size", content=b"\x00" * BINARY_OVER, headers=binary)
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    # The same number of bytes as text reaches the function.
    text = edge.client.post(
        "/faulty/size", content=b"x" * BINARY_OVER, headers={"Content-Type": "text/plain"}
    )
    assert text.text == f"{BINARY_OVER} False"
    # A chunked body (no Content-Length) over the limit is refused as well.
    chunks = iter([b"x" * (LAMBDA_LIMIT // 2)] * 3)
    chunked = edge.client.post(
        "/faulty/size", content=chunks, headers={"Content-Type": "text/plain"}
    )
    assert chunked.status_code == 413
    _still_serving(edge)


def test_header_names_count_towards_lambdas_6_mb_though_not_towards_the_quota(
    edge: RunningEdge,
) -> None:
    # GIVEN a binary body whose base64 text is 64 KiB under Lambda's limit, and ~80 KB of header
    # names with empty values: API Gateway's 10,240-byte quota counts header values only, so
    # the request passes it, but every name is a key of the event's `headers`
    raw = b"\x00" * ((LAMBDA_LIMIT - 65_536) // 4 * 3)
    names = {f"x-{i:04d}-{'n' * 100}": "" for i in range(700)}
    binary = {"Content-Type": "application/octet-stream"}
    # WHEN it is sent THEN the event is over 6 MB and Lambda refuses it: 413, not invoked
    response = edge.client.post("/faulty/size", content=raw, headers={**binary, **names})
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    # AND the same body with a few header names reaches the function
    fits = edge.client.post("/faulty/size", content=raw, headers=binary)
    assert fits.text == f"{len(raw) // 3 * 4} True"
    _still_serving(edge)


def test_a_declared_body_is_refused_unread_only_when_no_encoding_of_it_fits(
    edge: RunningEdge,
) -> None:
    # GIVEN a 5 MB text body: its base64 text would be over Lambda's 6 MB, the text is not
    text = edge.client.post(
        "/faulty/size", content=b"x" * 5_000_000, headers={"Content-Type": "text/plain"}
    )
    # THEN it reaches the function as text, as on AWS
    assert text.text == "5000000 False"
    # AND a binary body whose base64 text alone is over the limit is refused as declared,
    # before a byte of it is sent (the client never sends it here)
    head = _raw_head(
        edge,
        b"POST /faulty/size HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (BINARY_OVER + 3),
    )
    assert head.startswith(b"HTTP/1.1 413 ")
    _still_serving(edge)


def test_the_authorizer_answers_before_lambda_refuses_a_payload(edge: RunningEdge) -> None:
    body = b"x" * (LAMBDA_LIMIT + 1)
    text = {"Content-Type": "text/plain"}
    # No identity source: 401 before anything else; a denied one: 403; allowed: Lambda's 413.
    assert edge.client.post("/protected/size", content=body, headers=text).status_code == 401
    denied = edge.client.post(
        "/protected/size", content=body, headers={**text, "Authorization": "deny"}
    )
    assert denied.status_code == 403
    allowed = edge.client.post(
        "/protected/size", content=body, headers={**text, "Authorization": "allow"}
    )
    assert allowed.status_code == 413
    small = edge.client.post(
        "/protected/size", content=b"abc", headers={**text, "Authorization": "allow"}
    )
    assert small.text == "3 False"


@pytest.mark.parametrize("action", ["raise", "garbage", "unserialisable", "badbase64", "huge"])
def test_function_error_invalid_or_oversized_result_is_500(edge: RunningEdge, action: str) -> None:
    response = edge.client.get(f"/faulty/{action}")
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    _still_serving(edge)


def test_a_result_of_exactly_lambdas_response_limit_is_delivered(edge: RunningEdge) -> None:
    response = edge.client.get("/faulty/justfits")
    assert response.status_code == 200
    assert len(response.content) == 6_291_556 - len('{"statusCode": 200, "body": ""}')


def test_function_past_its_timeout_is_500(edge: RunningEdge) -> None:
    response = edge.client.get("/faulty/sleep")
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    _still_serving(edge)
    assert edge.client.get("/faulty/other").text == "faulty-app"


def test_integration_timeout_before_the_functions_is_503(edge: RunningEdge) -> None:
    # GIVEN a route whose TimeoutInMillis (300) is shorter than its function's Timeout (1 s)
    response = edge.client.get("/integration/sleep")
    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}
    assert edge.client.get("/integration/other").text == "faulty-app"


@pytest.mark.parametrize(
    ("action", "body"),
    [("nostatus", b'{"hello":"world","n":1}'), ("string", b"plain")],
)
def test_result_without_status_code_is_200_json(
    edge: RunningEdge, action: str, body: bytes
) -> None:
    response = edge.client.get(f"/faulty/{action}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == body


def test_a_results_own_date_is_the_only_date_as_sam_local_sends_it(edge: RunningEdge) -> None:
    # GIVEN a function whose result sets Date WHEN it is called THEN that Date is the only one
    # (lucid_edge.responses, note (8): sam local's server adds its own only when there is none)
    dated = edge.client.get("/faulty/dated")
    assert dated.headers.get_list("date") == ["Wed, 21 Oct 2015 07:28:00 GMT"]
    # AND a result without one gets the edge's, one field, now
    undated = edge.client.get("/faulty/other")
    (stamp,) = undated.headers.get_list("date")
    assert abs(parsedate_to_datetime(stamp).timestamp() - time.time()) < 5
    # ...in the one format RFC 9110 lets a sender use (section 5.6.7, IMF-fixdate: GMT)
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", stamp)
    # AND so do the edge's own answers, and uvicorn's to a request it cannot parse
    assert len(edge.client.get("/no/such/route").headers.get_list("date")) == 1
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"BAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = raw.recv(4096).split(b"\r\n\r\n")[0].lower().split(b"\r\n")
    assert head[0] == b"http/1.1 400 bad request"
    assert sum(line.startswith(b"date: ") for line in head) == 1


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
    assert answer["context"]["memory_limit_in_mb"] == "256"  # a string, as on Lambda
    assert 0 < answer["context"]["remaining_ms"] <= 3000
    assert answer["greeting"] == "hello-test"
    assert answer["empty_is_set"] is False


@pytest.mark.parametrize(
    ("target", "parameters"),
    [("/echo?&", None), ("/echo?&&", None), ("/echo?=", {"": ""}), ("/echo?", None)],
)
def test_a_query_of_separators_reaches_the_function_as_sam_local_gives_it(
    edge: RunningEdge, target: str, parameters: dict[str, str] | None
) -> None:
    # GIVEN a request line whose query is separators only, sent as written
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    event = json.loads(body)["event"]
    # THEN its event has the parameters sam local's has: none (no field) for `?&` and `?&&`
    # (the edge gave {}), one named "" for `?=`
    assert event.get("queryStringParameters") == parameters
    assert ("queryStringParameters" in event) is (parameters is not None)
    assert event["rawQueryString"] == target.partition("?")[2]


def test_header_values_reach_the_event_as_the_text_the_client_sent(edge: RunningEdge) -> None:
    # GIVEN a header in UTF-8 and one in Latin-1 (obs-text, not UTF-8)
    utf8 = "na\u00efve \u65e5\u672c"
    headers = {b"X-Note": utf8.encode(), b"X-Legacy": b"caf\xe9"}
    # WHEN they pass the edge
    event = edge.client.get("/echo", headers=headers).json()["event"]
    # THEN the event holds the characters sent (not each UTF-8 byte as a character), and a
    # value that is not UTF-8 one character per byte
    assert event["headers"]["x-note"] == utf8
    assert event["headers"]["x-legacy"] == "caf\u00e9"


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


@pytest.mark.parametrize("code", [100, 102, 103, 199])
def test_an_informational_status_code_is_a_malformed_result_500(
    edge: RunningEdge, code: int
) -> None:
    # GIVEN a function answering statusCode 1xx (interim: never a final HTTP answer)
    response = edge.client.get(f"/faulty/status?code={code}&body=x", timeout=3)
    # THEN the client gets API Gateway's malformed-result 500, and the connection serves on
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert edge.client.get("/faulty/other", timeout=3).text == "faulty-app"


@pytest.mark.parametrize("code", [204, 304])
def test_no_content_statuses_carry_no_body_and_no_added_headers(
    edge: RunningEdge, code: int
) -> None:
    # GIVEN a function answering 204 / 304 with a body and no content-type
    response = edge.client.get(f"/faulty/status?code={code}&body=hello")
    # THEN the body is dropped and the edge adds no content-type and no content-length
    assert response.status_code == code
    assert response.content == b""
    assert "content-type" not in response.headers
    assert "content-length" not in response.headers
    assert response.headers["apigw-requestid"]
    # AND the same kept-alive connection carries the next request intact
    assert edge.client.get("/faulty/other").text == "faulty-app"
    # A content-type the function sets is kept.
    typed = edge.client.get(f"/faulty/status?code={code}&type=text/plain")
    assert typed.headers["content-type"] == "text/plain"
    assert "content-length" not in typed.headers
    _still_serving(edge)
