"""What a body costs in the Lambda result, by Mangum's rule (text as a JSON string, else base64)."""

from __future__ import annotations

import base64
import json

import pytest

from lucid.lambda_result import body_size_in_result


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        # text types: the body as a JSON string with json.dumps' defaults (ensure_ascii)
        (b'{"a":"\\u00e9"}', "application/json", len(json.dumps('{"a":"\\u00e9"}'))),
        ("é".encode(), "text/plain; charset=utf-8", len(json.dumps("é"))),
        ("é".encode(), None, len(json.dumps("é"))),  # Mangum's default type is JSON
        # a text type that is not UTF-8, and every other type: base64
        (b"caf\xe9", "text/plain; charset=latin-1", len(base64.b64encode(b"caf\xe9"))),
        (bytes(range(256)), "application/octet-stream", len(base64.b64encode(bytes(range(256))))),
        (b"", "image/png", 0),
    ],
)
def test_the_size_is_what_mangum_puts_in_the_result(
    body: bytes, content_type: str | None, expected: int
) -> None:
    assert body_size_in_result(body, content_type) == expected
