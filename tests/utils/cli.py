"""The `lucid` command line as a user runs it: a process of its own, from the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LUCID = Path(sys.executable).parent / "lucid"  # the console script `make` installs


def run_lucid(
    *args: str, env: Mapping[str, str], program: Path = LUCID, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`lucid ARGS` run from the repository with `env` only; its output captured as text."""
    return subprocess.run(
        [str(program), *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def without_a_jwt_key() -> dict[str, str]:
    """This process's environment as a developer's shell has it: no JWT key named."""
    return {k: v for k, v in os.environ.items() if not k.startswith("JWT_SECRET")}
