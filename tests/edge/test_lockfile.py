"""`make lock`'s writer (`lucid_edge.lockfile`): a lock whose content would not change is left
as it was, mtime included, so the next `make` does not reinstall .venv and .venv-sam.

The compile command here is a real process standing in for `uv pip compile -o {}` (which needs
the package index): like uv, it reads the pins already in its output file and writes the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lucid_edge.lockfile import main

ROOT = Path(__file__).resolve().parents[2]
# Keeps what the output file pins (as uv keeps every pin that still fits) and pins the version
# given, one line per package, sorted: the same input gives the same bytes.
COMPILE = """
import pathlib, sys
out, pin = pathlib.Path(sys.argv[1]), sys.argv[2]
pins = dict(l.split("==") for l in out.read_text().split()) if out.exists() else {}
name, version = pin.split("==")
pins[name] = version
out.write_text("".join(f"{n}=={v}\\n" for n, v in sorted(pins.items())))
"""
OLD = 1_767_225_600_000_000_000  # 2026-01-01, in ns: an mtime a rewrite could not keep


def lock(target: Path, pin: str) -> int:
    return main([str(target), sys.executable, "-c", COMPILE, "{}", pin])


def test_a_lock_whose_content_does_not_change_keeps_its_mtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "requirements.lock"
    # GIVEN a lock written once (it did not exist)
    assert lock(target, "fastapi==0.120.0") == 0
    assert target.read_text() == "fastapi==0.120.0\n"
    os.utime(target, ns=(OLD, OLD))
    # WHEN the lock step runs again and resolves the same versions
    assert lock(target, "fastapi==0.120.0") == 0
    # THEN the file is left untouched, mtime included, and no scratch copy remains
    assert target.stat().st_mtime_ns == OLD
    assert target.read_text() == "fastapi==0.120.0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["requirements.lock"]
    # AND when a version does change, the lock is replaced, keeping the pins it had
    assert lock(target, "mangum==0.22.0") == 0
    assert target.read_text() == "fastapi==0.120.0\nmangum==0.22.0\n"
    assert target.stat().st_mtime_ns != OLD
    assert capsys.readouterr().out.splitlines() == [
        f"{target}: updated",
        f"{target}: unchanged (left as it was)",
        f"{target}: updated",
    ]


def test_a_failed_compile_leaves_the_lock_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "requirements.lock"
    target.write_text("fastapi==0.120.0\n")
    os.utime(target, ns=(OLD, OLD))
    # WHEN the compile fails after writing half a file THEN its status is the command's
    half = "import sys; open(sys.argv[1], 'w').write('fast'); sys.exit(3)"
    assert main([str(target), sys.executable, "-c", half, "{}"]) == 3
    assert (target.read_text(), target.stat().st_mtime_ns) == ("fastapi==0.120.0\n", OLD)
    assert [p.name for p in tmp_path.iterdir()] == ["requirements.lock"]


def test_a_command_without_the_copys_place_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["requirements.lock", "uv", "pip", "compile"]) == 2
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: python -m lucid_edge.lockfile")


def test_every_file_make_lock_writes_goes_through_the_writer() -> None:
    # `make -n` prints the recipe without running it (no index needed)
    recipe = subprocess.run(
        ["make", "-n", "lock"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    compiles = [line for line in recipe.splitlines() if "uv pip compile" in line]
    written = [line.split("lucid_edge.lockfile ", 1)[1].split()[0] for line in compiles]
    assert written == [
        "requirements.lock",
        "infra/sam-cli.lock",
        "shared/requirements.txt",
        "${input%.in}.txt",
        "bench/lambda/hello/requirements.txt",
    ]
    assert all(line.rstrip(" \\;").endswith("-o {}") or "-o {} ||" in line for line in compiles)
