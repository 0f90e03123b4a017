"""The OpenAPI document's 400 of the proxy routes names every refusal the proxy makes: each bad
request below is sent to the real proxy handler (Mangum, a payload 2.0 event), refused before any
connection, and what its detail names is in the description the gateway's document is built
from (the proxy function's own document)."""

from __future__ import annotations

from typing import Any

import pytest

from lucid.proxy import Proxy
from tests.functions.proxy.test_proxy_function import USER, invoke, problem
from tests.shared.proxy.proxy_backends import BackendServer
from tests.utils.functions import load_module

# (path, query, headers) -> what the refusal's detail says, and the description must say too.
REFUSALS: list[tuple[str, str, dict[str, str], str]] = [
    ("/chain/a/../b", "", {}, "dot segment"),
    ("/chain/a/..;x/b", "", {}, "dot segment"),
    ("/chain/a/\uff0e\uff0e/b", "", {}, "dot segment"),  # fullwidth full stops
    ("/chain/a//b", "", {}, "empty segment"),
    ("/chain/a\\b", "", {}, "backslash"),
    ("/chain/a\uff3cb", "", {}, "backslash"),  # fullwidth reverse solidus
    ("/chain/http://evil.example/", "", {}, "absolute URL"),
    ("/chain/a\x00b", "", {}, "control character"),
    ("/chain/a%25c3", "", {}, "invalid percent-encoding"),
    ("/chain/a%252525252541", "", {}, "percent-encoded too many times"),
    ("/chain/a", "q=a%0db\r", {}, "control character"),
    ("/chain/a", "", {"x y": "1"}, "not an HTTP token"),
    ("/chain/a", "", {"x-note": "a\x01b"}, "control character"),
]


def _description_of_400() -> str:
    document: dict[str, Any] = load_module("proxy").app.openapi()
    descriptions = {
        operation["responses"]["400"]["description"]
        for path, item in document["paths"].items()
        for operation in item.values()
    }
    (description,) = descriptions  # one for every proxy route
    return str(description)


@pytest.mark.parametrize(("path", "query", "headers", "named"), REFUSALS)
def test_every_refusal_of_the_proxy_is_named_in_its_documented_400(
    proxied: Proxy,
    backend: BackendServer,
    path: str,
    query: str,
    headers: dict[str, str],
    named: str,
) -> None:
    # WHEN the real proxy handler gets the request THEN it refuses it, naming why, unsent
    _, answer_headers, body = invoke("GET", path, query=query, headers=headers, authorizer=USER)
    assert named in problem(400, answer_headers, body)["detail"]
    assert backend.connections == 0
    # AND the document's 400 for the proxy routes names that refusal
    assert named in _description_of_400()


def test_the_documented_400_names_the_forms_a_backend_may_fold() -> None:
    description = _description_of_400()
    assert "`..;x`" in description
    assert "fullwidth" in description
