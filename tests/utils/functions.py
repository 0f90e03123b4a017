"""Load a function's handler the way Lambda does: its folder first on sys.path, isolated.

Every function's entry module is called `app`, so each load removes the function's own modules
from `sys.modules` afterwards; the layer stays shared, as a Lambda layer is.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


def _owned_by(module: ModuleType | None, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return bool(file) and Path(file).resolve().is_relative_to(folder)


@functools.cache
def load_module(group: str, module: str = "app") -> ModuleType:
    """Import `module` from functions/<group>/ without letting it clash with other functions."""
    folder = (FUNCTIONS_DIR / group).resolve()
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n, m in sys.modules.items() if _owned_by(m, folder)]:
            del sys.modules[name]


def load_handler(group: str) -> Any:
    """The `handler` callable of functions/<group>/app.py."""
    return load_module(group).handler
