"""Lambda results -> HTTP as payload 2.0 defines it."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from lucid_edge import responses
from lucid_edge.responses import MAX_RESPONSE_BYTES, InvalidResultError, to_http


def test_full_result_becomes_status_headers_cookies_and_body() -> None:
    response = to_http(
        {
            "statusCode": 201,
            "headers": {
                "Content-Type": "text/plain",
                "X-N": 3,
                "X-B": True,
                "X-F": False,
                "X-R": 1.5,
            },
            "cookies": ["a=1", "b=2"],
            "body": "made",
        }
    )
    assert response.status == 201
    assert response.headers == [
        (b"content-type", b"text/plain"),
        (b"x-n", b"3"),
        (b"x-b", b"true"),
        (b"x-f", b"false"),
        (b"x-r", b"1.5"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert response.body == b"made"


def test_base64_body_is_decoded_and_missing_body_is_empty() -> None:
    data = base64.b64encode(b"\x00\x01").decode()
    assert to_http({"statusCode": 200, "body": data, "isBase64Encoded": True}).body == b"\x00\x01"
    assert to_http({"statusCode": 204}).body == b""
    assert to_http({"statusCode": 200}).body == b""


@pytest.mark.parametrize(
    ("result", "body"),
    [({"a": 1}, b'{"a":1}'), ("Hello from Lambda!", b"Hello from Lambda!"), (7, b"7"),
     (None, b"null"), ([1, "2"], b'[1,"2"]'), ("", b"")],
)  # fmt: skip
def test_result_without_status_code_is_200_json_whose_body_is_the_output(
    result: Any, body: bytes
) -> None:
    # Payload 2.0 format inference: a bare string is the body itself, as AWS's table shows.
    response = to_http(result)
    assert response.status == 200
    assert response.headers == [(b"content-type", b"application/json")]
    assert response.body == body


def test_the_response_limit_is_on_the_whole_result_as_json() -> None:
    # The JSON of the result (statusCode, headers, quotes and escapes) is what Lambda limits.
    # Lambda's "Response payload size exceeded maximum allowed payload size (6291556 bytes)"
    assert MAX_RESPONSE_BYTES == 6_291_556
    fits = MAX_RESPONSE_BYTES - len('{"statusCode": 200, "body": ""}')
    assert len(to_http({"statusCode": 200, "body": "x" * fits}).body) == fits
    with pytest.raises(InvalidResultError, match="6,291,556"):
        to_http({"statusCode": 200, "body": "x" * (fits + 1)})
    with pytest.raises(InvalidResultError, match="6,291,556"):
        to_http({"statusCode": 200, "body": '"' * (fits // 2 + 1)})  # each quote escaped
    # An emoji is 12 bytes of the runtime's JSON (a surrogate pair of \u escapes, json.dumps'
    # ensure_ascii): the most that fit, and one more is over
    frame = len('{"statusCode": 200, "body": ""}')
    emoji = (MAX_RESPONSE_BYTES - frame) // len(json.dumps("\U0001f600")[1:-1])
    assert len(to_http({"statusCode": 200, "body": "\U0001f600" * emoji}).body) == 4 * emoji
    with pytest.raises(InvalidResultError, match="6,291,556"):
        to_http({"statusCode": 200, "body": "\U0001f600" * (emoji + 1)})


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 200, "headers": {"x-big": "v" * 6_291_556}, "body": "ok"},
        {"statusCode": 200, "cookies": ["a=" + "v" * 3_145_778] * 2, "body": "ok"},
        {"statusCode": 200, "body": "ok", "note": "v" * 6_291_556},
    ],
    ids=["headers", "cookies", "other-keys"],
)
def test_a_result_over_the_limit_is_refused_whatever_part_of_it_is_large(
    result: dict[str, Any],
) -> None:
    # GIVEN a result whose body is small but whose JSON is over Lambda's 6,291,556 bytes:
    # Lambda measures the whole response payload, not its body ("Response payload size exceeded
    # maximum allowed payload size (6291556 bytes)")
    # THEN it is a function error (500), as on AWS, not a 200 with megabytes of headers
    with pytest.raises(InvalidResultError, match="6,291,556"):
        to_http(result)


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "200"},
        {"statusCode": True},
        {"statusCode": 700},
        {"statusCode": 200, "headers": "x: y"},
        {"statusCode": 200, "cookies": "a=1"},
        {"statusCode": 200, "headers": {"x": {"nested": 1}}},
        {"statusCode": 200, "headers": {"x": "snow\u2603"}},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "***", "isBase64Encoded": True},
        {"statusCode": 200, "body": "x" * (MAX_RESPONSE_BYTES + 1)},
        {"value": object()},
        {"statusCode": 200, "body": "", "note": object()},
        {"value": float("nan")},
        ["x" * MAX_RESPONSE_BYTES],
    ],
)
def test_invalid_results_are_refused(result: Any) -> None:
    with pytest.raises(InvalidResultError):
        to_http(result)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"statusCode": 200, "headers": {"x": ["a"]}}, "a header value must be a string"),
        ({"statusCode": 200, "cookies": [None]}, "a cookie must be a string"),
        ({"statusCode": 200, "note": {1, 2}}, "the result is not JSON-serialisable"),
        ({"value": {1, 2}}, "the result is not JSON-serialisable"),
        ({"statusCode": 200, "body": "x" * MAX_RESPONSE_BYTES},
         "the response is over 6,291,556 bytes"),
        ({"statusCode": "200"}, "statusCode must be an integer HTTP status"),
        ({"statusCode": 101}, "statusCode 1xx is not a final HTTP status"),
        ({"statusCode": 200, "cookies": "a=1"}, "headers must be an object and cookies a list"),
        ({"statusCode": 200, "headers": {"x": "snow\u2603"}}, "header values must be latin-1 text"),
        ({"statusCode": 200, "headers": {"bad name": "v"}},
         "a header name or value is not valid HTTP"),
        ({"statusCode": 200, "body": 1}, "body must be a string"),
        ({"statusCode": 200, "body": "***", "isBase64Encoded": True},
         "isBase64Encoded body is not base64"),
    ],
)  # fmt: skip
def test_a_refusal_says_what_is_wrong_with_the_result(result: Any, message: str) -> None:
    # The edge's error line says it ("<function> returned an invalid result: <this>"); the
    # client gets API Gateway's 500 whatever it is
    with pytest.raises(InvalidResultError, match=f"^{re.escape(message)}$"):
        to_http(result)


def _sized(headers: dict[str, str], size: int) -> dict[str, Any]:
    # A result with `headers` whose JSON (as the runtime sends it) is `size` bytes: a body of
    # emoji (12 bytes each) and ASCII
    empty = {"statusCode": 200, "headers": headers, "body": ""}
    room = size - len(json.dumps(empty))
    result = {**empty, "body": "\U0001f600" * (room // 12) + "x" * (room % 12)}
    assert len(json.dumps(result).encode()) == size
    return result


@pytest.mark.parametrize(
    "headers",
    [{"x-big": "v" * 100_000}, {"x-" + "n" * 100_000: ""}, {f"h{i:02d}": "" for i in range(100)}],
    ids=["long-value", "long-name", "many-short-headers"],
)
def test_headers_count_towards_the_limit_with_a_body_of_many_bytes_a_character(
    headers: dict[str, str],
) -> None:
    # GIVEN a result whose body of emoji is as large as the headers leave room for
    # THEN it is delivered at the limit and refused a byte past it
    assert to_http(_sized(headers, MAX_RESPONSE_BYTES)).status == 200
    with pytest.raises(InvalidResultError, match="6,291,556"):
        to_http(_sized(headers, MAX_RESPONSE_BYTES + 1))


@pytest.mark.parametrize(
    "headers",
    [{"x-note": "a\r\nset-cookie: evil=1"}, {"bad name": "v"}, {"x-nul": "a\x00b"}],
)
def test_a_header_no_http_server_can_send_is_a_malformed_result(headers: dict[str, str]) -> None:
    # AWS answers 500 for a malformed result; uvicorn would drop the connection instead
    with pytest.raises(InvalidResultError):
        to_http({"statusCode": 200, "headers": headers, "body": ""})


def test_every_final_status_of_http_passes_through_and_none_past_it() -> None:
    # RFC 9110 section 15: a status code is a three-digit integer from 100 to 599
    assert [to_http({"statusCode": s}).status for s in (200, 599)] == [200, 599]
    for status in (99, 600):
        with pytest.raises(InvalidResultError, match="integer HTTP status"):
            to_http({"statusCode": status})


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_an_informational_status_is_not_a_final_answer(status: int) -> None:
    with pytest.raises(InvalidResultError, match="1xx"):
        to_http({"statusCode": status, "body": "x"})


@pytest.mark.parametrize("status", [204, 304])
def test_a_no_content_status_drops_the_body_and_adds_no_header(status: int) -> None:
    response = to_http({"statusCode": status, "body": "ignored", "headers": {"etag": '"1"'}})
    assert (response.status, response.body) == (status, b"")
    assert response.headers == [(b"etag", b'"1"')]


def test_the_edges_own_answers_are_api_gateways_status_and_message() -> None:
    # API Gateway's own errors: `{"message": "<reason phrase>"}` as application/json (the table
    # in lucid_edge.responses)
    answers = {
        (r.status, r.body)
        for r in vars(responses).values()
        if isinstance(r, responses.HttpResponse)
        and r.headers == [(b"content-type", b"application/json")]
    }
    assert answers == {
        (401, b'{"message":"Unauthorized"}'),
        (403, b'{"message":"Forbidden"}'),
        (404, b'{"message":"Not Found"}'),
        (408, b'{"message":"Request Timeout"}'),
        (413, b'{"message":"Request Entity Too Large"}'),
        (429, b'{"message":"Too Many Requests"}'),
        (431, b'{"message":"Request Header Fields Too Large"}'),
        (500, b'{"message":"Internal Server Error"}'),
        (503, b'{"message":"Service Unavailable"}'),
    }
