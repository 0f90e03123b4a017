"""`lucid routes`: the meta function's route manifest is generated from the template."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lucid_edge.cli import main
from lucid_edge.manifest import MANIFEST, render
from lucid_edge.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"


def test_committed_manifest_matches_the_template() -> None:
    # GIVEN the template and the manifest the meta function ships with
    # THEN they agree; if not, run `lucid routes --write`
    assert (ROOT / MANIFEST).read_text(encoding="utf-8") == render(load_template(TEMPLATE))


def test_routes_prints_every_function_with_public_routes_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["routes", "--template", str(TEMPLATE)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    routes = {r["route"]: r["authorizer"] for f in manifest["functions"] for r in f["routes"]}
    assert routes["GET /health"] is None
    assert routes["POST /auth/logout"] == "LucidAuthorizer"
    assert {f["name"] for f in manifest["functions"]} >= {"MetaFunction", "AuthorizerFunction"}


def test_routes_write_updates_the_manifest_beside_the_meta_function(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "infra", tmp_path / "infra")
    shutil.copytree(ROOT / "functions", tmp_path / "functions")
    (tmp_path / MANIFEST).write_text("{}", encoding="utf-8")
    assert main(["routes", "--template", str(tmp_path / "infra" / "template.yaml"), "--write"]) == 0
    assert (tmp_path / MANIFEST).read_text(encoding="utf-8") == render(load_template(TEMPLATE))
