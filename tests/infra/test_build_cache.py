"""`make sam-build` uses SAM's build cache as samconfig.toml asks, and never ships stale code.

SAM decides whether to rebuild the layer from its ContentUri folder's files alone (aws-sam-cli,
CachedBuildStrategy), so a change to the build rules (infra/lambda_build.py, infra/Makefile)
would leave the cached layer in place; `sam sync` always builds cached. The Makefile keys the
cache on those rules (its `sam-cache` target). These tests run the real `make sam-build`
(aws-sam-cli from .venv-sam) three times in a copy of the project: ~25 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.artifact import ROOT, SAM

# What `make sam-build` reads: the Makefile, the config, the template and the code it builds.
PROJECT = ("Makefile", "samconfig.toml", "infra", "shared", "functions")
MARKER = "BUILD_RULES_MARKER"


def _make_sam_build(project: Path) -> str:
    """`make sam-build` in `project`: its output (SAM logs to stderr)."""
    completed = subprocess.run(
        ["make", "--no-print-directory", "sam-build", f"SAM_VENV={SAM.parent.parent}"],
        cwd=project,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the project's build inputs, built once."""
    if not SAM.is_file():
        pytest.fail(f"{SAM} is missing: `make sam-build` installs aws-sam-cli there")
    root = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PROJECT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        else:
            shutil.copy2(source, root / name)
    _make_sam_build(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _built(project: Path) -> list[Path]:
    """The built layer's and functions' folders."""
    return sorted(p for p in (project / ".aws-sam" / "build").iterdir() if p.is_dir())


def test_an_unchanged_layer_comes_from_the_cache_samconfig_asks_for(project: Path) -> None:
    # GIVEN a built project (samconfig.toml: [default.build.parameters] cached = true)
    # WHEN it is built again without a change
    output = _make_sam_build(project)
    # THEN the project's samconfig.toml was read, and the layer was reused from the cache
    assert "Valid cache found, copying previously built resources for following layers" in output
    assert "SharedLayer" in output


def test_a_change_to_the_build_rules_reaches_the_layer_and_every_function(project: Path) -> None:
    # GIVEN a built project whose build script then changes (it now leaves a marker file),
    # a change outside every CodeUri/ContentUri folder SAM's cache looks at
    script = project / "infra" / "lambda_build.py"
    source = script.read_text()
    call = "    compile_bytecode(code_root, mounted_at, installed)\n"
    assert call in source
    script.write_text(source.replace(call, f"{call}    (artifacts / {MARKER!r}).touch()\n"))
    # WHEN it is built again
    output = _make_sam_build(project)
    # THEN the cache was dropped, and the layer and each function were built by the new rules
    assert "dropping SAM's build cache" in output
    built = _built(project)
    assert "SharedLayer" in {p.name for p in built}
    assert len(built) > 5
    assert [p.name for p in built if not (p / MARKER).is_file()] == []
