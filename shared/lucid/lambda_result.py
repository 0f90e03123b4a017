"""What a response costs in the Lambda result that carries it to API Gateway.

Lambda refuses a result whose JSON is over 6,291,556 bytes ("Response payload size exceeded
maximum allowed payload size (6291556 bytes)", a function error: API Gateway answers 500
`{"message":"Internal Server Error"}`; https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html,
"Invocation payload (request and response) | 6 MB each"). The body is not counted as sent:
Mangum puts a body whose Content-Type names none of TEXT_MIME_TYPES (or that is not UTF-8) in
the result base64-encoded (4 bytes per 3), and a text body as a JSON string, which the Python
runtime writes with `json.dumps`' defaults (`ensure_ascii`: up to 6 bytes per byte of UTF-8,
`\\u00e9` for `é`). Kept apart from `lucid.web` so that the proxy, which must refuse an answer
that would not fit, imports no web code for it.
"""

from __future__ import annotations

import json

MAX_RESULT_BYTES = 6_291_556
# Mangum base64-encodes any body whose type it does not know as text; problem+json is text.
TEXT_MIME_TYPES = ["text/", "application/json", "+json", "application/xml", "+xml"]


def body_size_in_result(body: bytes, content_type: str | None) -> int:
    """How many bytes `body` takes in a Lambda result, as Mangum (payload 2.0) writes it.

    `content_type` is the response's; Mangum gives a response without one `application/json`.
    """
    kind = "application/json" if content_type is None else content_type
    if any(text in kind for text in TEXT_MIME_TYPES):
        try:
            text = body.decode()
        except UnicodeDecodeError:
            pass  # Mangum falls back to base64
        else:
            return len(json.dumps(text))
    return 4 * -(-len(body) // 3)
