"""`lucid routes`: the functions and routes of the template, as the meta function reports them.

A deployed function has no template to read, so `functions/meta/routes.json` is generated from
it (`lucid routes --write`) and a test fails whenever the two disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lucid_edge.generated import register_generated
from lucid_edge.model import Template
from lucid_edge.template import load_template

MANIFEST = Path("functions/meta/routes.json")


def route_manifest(template: Template) -> dict[str, Any]:
    """Every function with its routes (route key and authorizer, None when public)."""
    functions: list[dict[str, Any]] = []
    for logical_id in template.functions:
        routes = [
            {"route": route.route_key, "authorizer": route.authorizer}
            for route in template.api.routes
            if route.function == logical_id
        ]
        functions.append({"name": logical_id, "routes": routes})
    return {"functions": functions}


def render(template: Template) -> str:
    """The manifest file's exact text."""
    return json.dumps(route_manifest(template), indent=2) + "\n"


def register(subparsers: Any) -> None:
    """Add the `routes` subcommand."""
    register_generated(
        subparsers,
        "routes",
        "print the template's functions and routes (--write updates the manifest)",
        MANIFEST,
        lambda template: render(load_template(template)),
    )
