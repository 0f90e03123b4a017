"""`lucid requirements`: the layer's declared set, which `make lock` compiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from lucid_edge.cli import main
from lucid_edge.requirements import distribution_name

PYPROJECT = """
[project]
name = "x"
dependencies = ["fastapi>=0.115,<1", "boto3>=1.34", "pyjwt[crypto]>=2.9", "Hiredis_Extra.x"]

[project.optional-dependencies]
edge = ["mongomock>=4.3"]
dev = ["pytest>=8"]

[tool.lucid.layer]
provided-by-runtime = ["Boto3"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT, encoding="utf-8")
    return pyproject


def test_prints_the_runtime_set_without_what_lambda_provides_or_any_extra(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["requirements", "--pyproject", str(project)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "fastapi>=0.115,<1",
        "pyjwt[crypto]>=2.9",
        "Hiredis_Extra.x",
    ]
    assert "# Left out, provided by Lambda's runtime: boto3." in lines


@pytest.mark.parametrize(
    ("requirement", "name"),
    [("PyYAML>=6", "pyyaml"), ("uvicorn[standard]>=0.30", "uvicorn"), ("a_b.c", "a-b-c")],
)
def test_distribution_names_are_normalised(requirement: str, name: str) -> None:
    assert distribution_name(requirement) == name


def test_a_malformed_requirement_is_refused() -> None:
    with pytest.raises(ValueError, match="not a requirement"):
        distribution_name(">=1")
