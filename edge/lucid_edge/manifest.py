"""`lucid routes`: the functions and routes of the template, as the meta function reports them.

A deployed function has no template to read, so `functions/meta/routes.json` is generated from
it (`lucid routes --write`) and a test fails whenever the two disagree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lucid_edge.model import Template
from lucid_edge.template import load_template

DEFAULT_TEMPLATE = Path("infra/template.yaml")
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
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "routes", help="print the template's functions and routes (--write updates the manifest)"
    )
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, type=Path)
    parser.add_argument("--write", action="store_true", help=f"write {MANIFEST}")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the manifest, or write it beside the meta function."""
    text = render(load_template(args.template))
    if args.write:
        target = args.template.resolve().parent.parent / MANIFEST
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    else:
        print(text, end="")
    return 0
