"""The lines `lucid serve` writes, read from its output: one access line per request in the
template's AccessLogSettings.Format, whoever answered it, and every line of a request (access,
authorizer, function) joined by the request id the client got back as `apigw-requestid`. No
token, refresh token or signature ever reaches the output."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge, token_pair
from tests.edge.harness import FIXTURES
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.e2e

# Each route's bucket holds 3 requests and refills one every ~17 minutes: the 4th is a 429.
THROTTLE = {"ThrottlingBurstLimit": "3", "ThrottlingRateLimit": "0.001"}


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    with subprocess_edge({}, THROTTLE) as running:
        yield running


def _lines(output: str) -> list[dict[str, Any]]:
    """Every line from the first JSON one on; each must parse (the start-up banner before it is
    for the person who ran `make run`)."""
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return [json.loads(line) for line in lines[first:] if line.strip()]


def _output_with(edge: SubprocessEdge, request_ids: list[str]) -> str:
    """The edge's output once it holds the access line of every id (a line is written just
    after its answer; the edge's own error line of a request, written before, holds the id too)."""
    deadline = time.monotonic() + 10
    output = edge.output()
    wanted = [f'"requestId":"{i}"' for i in request_ids]
    while not all(w in output for w in wanted) and time.monotonic() < deadline:
        time.sleep(0.05)
        output = edge.output()
    return output


def _raw(edge: SubprocessEdge, request: bytes) -> tuple[int, str]:
    """Send bytes on a new connection; the status and apigw-requestid of the answer."""
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = (line.split(": ", 1) for line in head[1:])
    headers = {name.lower(): value for name, value in fields}
    return int(head[0].split()[1]), headers["apigw-requestid"]


@pytest.mark.usefixtures("redis_client")
def test_every_answer_has_one_access_line_and_its_lines_join_on_the_request_id(
    edge: SubprocessEdge,
) -> None:
    answers: dict[str, tuple[int, str]] = {}  # what -> (status, request id)
    with edge.client() as client:
        pair = token_pair(client, Wallet())
        good = {"Authorization": f"Bearer {pair['access_token']}"}

        def get(what: str, path: str, **kwargs: Any) -> None:
            response = client.request(kwargs.pop("method", "GET"), path, **kwargs)
            answers[what] = (response.status_code, response.headers["apigw-requestid"])

        get("no route", "/nowhere")
        get("no token", "/users/me")
        get("denied", "/users/me", headers={"Authorization": "Bearer not-a-jwt"})
        get("invoked", "/users/me", headers=good)
        get("throttled", "/users/me", headers=good)
        preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
        get("preflight", "/users/me", method="OPTIONS", headers=preflight)
    too_large = b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 11000000\r\n\r\n"
    answers["too large"] = _raw(edge, too_large)
    long_header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 11_000 + b"\r\n\r\n"
    answers["headers too large"] = _raw(edge, long_header)
    # uvicorn refuses what is not HTTP itself, and says so in a line of its own: JSON too
    host, port = edge.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    assert {what: status for what, (status, _) in answers.items()} == {
        "no route": 404,
        "no token": 401,
        "denied": 403,
        "invoked": 200,
        "throttled": 429,
        "preflight": 204,
        "too large": 413,
        "headers too large": 431,
    }

    lines = _lines(_output_with(edge, [request_id for _, request_id in answers.values()]))
    assert any("Invalid HTTP request" in line.get("message", "") for line in lines)
    access = {line["requestId"]: line for line in lines if "requestId" in line}
    for what, (status, request_id) in answers.items():
        # THEN exactly one access line per request, in the template's Format, with its status
        assert sum(line.get("requestId") == request_id for line in lines) == 1, what
        line = access[request_id]
        assert line["status"] == str(status), what
        assert line["ip"] == "127.0.0.1", what
        assert line["responseLength"].isdigit(), what
    # the edge's own answers name no integration and carry API Gateway's message
    for what, message in [
        ("no route", "Not Found"),
        ("no token", "Unauthorized"),
        ("denied", "Forbidden"),
        ("throttled", "Too Many Requests"),
        ("too large", "Request Entity Too Large"),
        ("headers too large", "Request Header Fields Too Large"),
    ]:
        line = access[answers[what][1]]
        assert (line["errorMessage"], line["integrationLatency"]) == (message, "-"), what
    assert access[answers["no route"][1]]["routeKey"] == "-"
    assert access[answers["denied"][1]]["routeKey"] == "GET /users/me"
    assert access[answers["denied"][1]]["authorizerLatency"].isdigit()
    invoked = access[answers["invoked"][1]]
    assert invoked["integrationLatency"].isdigit()
    assert invoked["errorMessage"] == "-"
    assert invoked["userId"] != "-"

    # THEN the function's lines of the invoked request carry its id
    function_lines = [line for line in lines if line.get("correlation_id") == invoked["requestId"]]
    assert {line.get("function_name") for line in function_lines} >= {"UsersFunction"}
    # AND the authorizer's refusal says which request, from where, with what status
    denied_id = answers["denied"][1]
    (refusal,) = [
        line
        for line in lines
        if line.get("correlation_id") == denied_id and line.get("message") == "denied"
    ]
    assert (refusal["status"], refusal["source_ip"]) == (403, "127.0.0.1")

    # AND no secret of the sign-in reached the output
    output = edge.output()
    for secret in (pair["access_token"], pair["refresh_token"], "not-a-jwt"):
        assert secret not in output
    signature_part = pair["access_token"].rsplit(".", 1)[1]
    assert signature_part not in output


def test_a_failed_invocation_has_its_access_line_and_a_json_error_line_with_the_id() -> None:
    # GIVEN the test template (no AccessLogSettings: the edge's default line) and a function that
    # answers nonsense, one that outlives its 1 s Timeout and one its 300 ms integration timeout
    # (a function that raises is the same, with the traceback in the line's `exception`:
    # tests/edge/test_edge_access_log.py; here the harness refuses tracebacks in the output)
    with subprocess_edge({}, workers=1, template=FIXTURES / "template.yaml") as edge:
        answers = {}
        with edge.client() as client:
            for path in ("/faulty/garbage", "/faulty/sleep", "/integration/sleep"):
                response = client.get(path)
                answers[path] = (response.status_code, response.headers["apigw-requestid"])
        lines = _lines(_output_with(edge, [request_id for _, request_id in answers.values()]))
    access = {line["requestId"]: line for line in lines if "requestId" in line}
    for path, status, message, integration_error in [
        ("/faulty/garbage", 500, "Internal Server Error", "the function's response is malformed"),
        ("/faulty/sleep", 500, "Internal Server Error", "Task timed out after 1.00 seconds"),
        ("/integration/sleep", 503, "Service Unavailable", "the integration timed out"),
    ]:
        answered, request_id = answers[path]
        assert answered == status, path
        # THEN the access line says what API Gateway answered and why the integration failed
        line = access[request_id]
        assert (line["status"], line["errorMessage"]) == (str(status), message), path
        assert line["integrationError"] == integration_error, path
        # AND the edge's own line about it is JSON at ERROR and carries the same id
        (edge_line,) = [
            entry
            for entry in lines
            if entry.get("correlation_id") == request_id and entry.get("service") == "lucid-edge"
        ]
        assert edge_line["level"] == "ERROR", path
