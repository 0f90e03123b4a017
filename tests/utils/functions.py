"""Load a function's handler the way Lambda does (CodeUri first on sys.path), isolated from the
other functions' modules by the edge's loader; the layer stays shared, as a Lambda layer is."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from lucid_edge.loader import load_function_module

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"


@functools.cache
def load_module(group: str, module: str = "app") -> ModuleType:
    """`module` of functions/<group>/, imported once per test session."""
    return load_function_module(FUNCTIONS_DIR / group, module)


def load_handler(group: str) -> Any:
    """The `handler` callable of functions/<group>/app.py."""
    return load_module(group).handler


def run_fresh_instance(script: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`script` run by a fresh Python process with the test session's environment and `env` on
    top: a Lambda instance cold-starting with that environment, apart from this process's own
    process-wide settings and clients. Fails unless it exits 0."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
