"""`lucid routes`: the functions and routes of the template, with the authorizer guarding each.

For operators: the deployed API does not publish how it is built (GET /meta/info names the
service, version and stage only), so this reads the template instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lucid_edge.intrinsics import TemplateError
from lucid_edge.model import Template
from lucid_edge.template import load_template

DEFAULT_TEMPLATE = Path("infra/template.yaml")


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


def register(subparsers: Any) -> None:
    """Add the `routes` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "routes", help="print the template's functions, their routes and authorizers"
    )
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, type=Path)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the manifest; 2 with one line on stderr when the template cannot be read (as
    `lucid serve` answers it)."""
    try:
        template = load_template(args.template)
    except TemplateError as error:
        print(f"lucid routes: {error}", file=sys.stderr)
        return 2
    print(json.dumps(route_manifest(template), indent=2))
    return 0
