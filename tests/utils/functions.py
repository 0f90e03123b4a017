"""Load a function's handler the way Lambda does (CodeUri first on sys.path), isolated from the
other functions' modules by the edge's loader; the layer stays shared, as a Lambda layer is."""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType
from typing import Any

from lucid_edge.loader import load_function_module

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


@functools.cache
def load_module(group: str, module: str = "app") -> ModuleType:
    """`module` of functions/<group>/, imported once per test session."""
    return load_function_module(FUNCTIONS_DIR / group, module)


def load_handler(group: str) -> Any:
    """The `handler` callable of functions/<group>/app.py."""
    return load_module(group).handler
