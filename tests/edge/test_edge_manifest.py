"""`lucid routes`: the template's functions and routes, for operators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lucid_edge.cli import main

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"


def test_routes_prints_every_function_with_public_routes_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["routes", "--template", str(TEMPLATE)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    routes = {r["route"]: r["authorizer"] for f in manifest["functions"] for r in f["routes"]}
    assert routes["GET /health"] is None
    assert routes["POST /auth/logout"] == "LucidAuthorizer"
    assert {f["name"] for f in manifest["functions"]} >= {"MetaFunction", "AuthorizerFunction"}
