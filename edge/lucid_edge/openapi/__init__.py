"""`lucid openapi`: the gateway's one OpenAPI 3.1 document, generated from the template and the
functions' FastAPI apps.

- document: the template's routes, each described by its function's own operations
- gateway: what API Gateway answers by itself (authorizer, throttle, no route, failures)

The meta function serves `functions/meta/openapi.json` (the deployed function has no template
to read), so `lucid openapi --write` regenerates it and a test fails whenever it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lucid_edge.generated import register_generated
from lucid_edge.openapi.document import OpenApiError, build_document, unserved_operations
from lucid_edge.template import apply_environment, load_template

__all__ = [
    "DOCUMENT",
    "OpenApiError",
    "build_document",
    "register",
    "render",
    "unserved_operations",
]

DOCUMENT = Path("functions/meta/openapi.json")


def render(document: dict[str, Any]) -> str:
    """The document file's exact text."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def register(subparsers: Any) -> None:
    """Add the `openapi` subcommand."""
    register_generated(
        subparsers,
        "openapi",
        "print the gateway's OpenAPI document (--write updates the meta function's copy)",
        DOCUMENT,
        _generate,
    )


def _generate(template_path: Path) -> str:
    template = load_template(template_path)
    # The functions build their settings when imported, as they do in Lambda.
    apply_environment(template)
    return render(build_document(template))
