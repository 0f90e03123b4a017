"""Lambda results -> HTTP as payload 2.0 defines it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lucid_edge.responses import MAX_RESPONSE_BYTES, InvalidResultError, to_http


def test_full_result_becomes_status_headers_cookies_and_body() -> None:
    response = to_http(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-N": 3, "X-B": True},
            "cookies": ["a=1", "b=2"],
            "body": "made",
        }
    )
    assert response.status == 201
    assert response.headers == [
        (b"content-type", b"text/plain"),
        (b"x-n", b"3"),
        (b"x-b", b"true"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert response.body == b"made"


def test_base64_body_is_decoded_and_missing_body_is_empty() -> None:
    data = base64.b64encode(b"\x00\x01").decode()
    assert to_http({"statusCode": 200, "body": data, "isBase64Encoded": True}).body == b"\x00\x01"
    assert to_http({"statusCode": 204}).body == b""


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
        {"value": float("nan")},
        ["x" * MAX_RESPONSE_BYTES],
    ],
)
def test_invalid_results_are_refused(result: Any) -> None:
    with pytest.raises(InvalidResultError):
        to_http(result)


@pytest.mark.parametrize(
    "headers",
    [{"x-note": "a\r\nset-cookie: evil=1"}, {"bad name": "v"}, {"x-nul": "a\x00b"}],
)
def test_a_header_no_http_server_can_send_is_a_malformed_result(headers: dict[str, str]) -> None:
    # AWS answers 500 for a malformed result; uvicorn would drop the connection instead
    with pytest.raises(InvalidResultError):
        to_http({"statusCode": 200, "headers": headers, "body": ""})


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_an_informational_status_is_not_a_final_answer(status: int) -> None:
    with pytest.raises(InvalidResultError, match="1xx"):
        to_http({"statusCode": status, "body": "x"})


@pytest.mark.parametrize("status", [204, 304])
def test_a_no_content_status_drops_the_body_and_adds_no_header(status: int) -> None:
    response = to_http({"statusCode": status, "body": "ignored", "headers": {"etag": '"1"'}})
    assert (response.status, response.body) == (status, b"")
    assert response.headers == [(b"etag", b'"1"')]
