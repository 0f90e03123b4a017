"""What the published OpenAPI document (functions/meta/openapi.json, served at
/meta/openapi.json) promises about one answer."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tests.utils.events import Reply

DOCUMENT = Path(__file__).resolve().parents[2] / "functions" / "meta" / "openapi.json"


@functools.cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return document


def _resolved(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = _document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def documented_headers(method: str, path: str, status: int) -> dict[str, bool]:
    """The headers the document declares for `status` of `method path`: name -> required."""
    responses = _document()["paths"][path][method.lower()]["responses"]
    response = _resolved(responses[str(status)])
    return {
        name: bool(_resolved(header).get("required"))
        for name, header in response.get("headers", {}).items()
    }


def assert_documented(reply: Reply, method: str, path: str, *names: str) -> None:
    """`names` are sent in `reply` and declared for its status (required ones always sent)."""
    declared = documented_headers(method, path, reply.status)
    for name in names:
        assert name.lower() in reply.headers, (name, reply.status)
        assert name in declared, f"{method} {path} {reply.status} sends {name}, undeclared"
