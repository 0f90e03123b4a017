"""Assertion messages that show an answer without the secrets it may hold.

A check that fails prints its message in CI's output: an answer's body where a sign-in or a
refresh unexpectedly succeeded holds an access and a refresh token, a request's headers hold
`Authorization` or `Cookie`. `shown(answer)` is what a shared helper puts after `assert ...,`:
the status, the headers and the body, each token-like field, credential header and JWT-shaped
string masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from tests.utils.events import Reply

__all__ = ["MASK", "masked", "masked_headers", "shown"]

MASK = "<redacted>"
# A JSON field whose name says it holds a credential: access_token, refresh_token, id_token,
# token, signature, password, client_secret, api_key, ...
SENSITIVE_FIELD = re.compile(r"token|secret|password|signature|credential|api_?key", re.I)
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
# A JWT (header.payload.signature, base64url; the header always starts `{"` = `eyJ`) anywhere
# in a text: a token echoed in a detail, a Location, a plain-text body.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def masked(value: Any) -> Any:
    """`value` (parsed JSON) with each credential field's value and each JWT masked."""
    if isinstance(value, Mapping):
        return {
            key: MASK if SENSITIVE_FIELD.search(str(key)) and value else masked(value)
            for key, value in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    if isinstance(value, str):
        return JWT.sub(MASK, value)
    return value


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with the credential headers' values masked (and JWTs in any other)."""
    return {
        name: MASK if name.lower() in SENSITIVE_HEADERS else JWT.sub(MASK, value)
        for name, value in headers.items()
    }


def _body(text: str) -> Any:
    try:
        return masked(json.loads(text))
    except ValueError:
        return JWT.sub(MASK, text)


def shown(answer: httpx.Response | Reply) -> str:
    """`answer` for an assertion message: status, headers and body, secrets masked."""
    if isinstance(answer, Reply):
        status, headers, body = answer.status, answer.headers, masked(answer.body)
    else:
        status, headers, body = answer.status_code, dict(answer.headers), _body(answer.text)
    return f"{status} {masked_headers(headers)} {body!r}"
