"""Load Lambda handlers from CodeUri + Handler, each function isolated from the others' modules.

Every function folder has a module called `app`. A function is imported with its CodeUri at the
front of `sys.path`; afterwards every module whose file lives under that CodeUri is taken out of
`sys.modules` (and kept in the function's own registry), so the next function's `app` is a fresh
import. Modules from elsewhere (the `lucid` layer, site-packages) stay shared, as a Lambda layer
is, and keep their warm clients across reloads.

Limitation: a function that imports one of its own modules lazily, inside the handler, gets a
fresh copy of it on each such import because it is not left in `sys.modules`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

_LOAD_LOCK = threading.Lock()
_log = logging.getLogger("lucid_edge.loader")


class HandlerLoadError(RuntimeError):
    """The handler named by the template cannot be imported or is not callable."""


def _source_mtimes(code_uri: Path) -> dict[str, int]:
    mtimes: dict[str, int] = {}
    for root, dirs, files in os.walk(code_uri):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                mtimes[path] = os.stat(path).st_mtime_ns
    return mtimes


def _import_isolated(code_uri: Path, module_name: str) -> tuple[ModuleType, dict[str, ModuleType]]:
    prefix = str(code_uri) + os.sep
    top = module_name.split(".", 1)[0]
    with _LOAD_LOCK:
        # Someone else's module of the same name (another function, a test helper) steps aside.
        shadowed = {
            name: sys.modules.pop(name)
            for name in list(sys.modules)
            if name == top or name.startswith(top + ".")
        }
        before = set(sys.modules)
        sys.path.insert(0, str(code_uri))
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            raise HandlerLoadError(f"cannot import {module_name!r} from {code_uri}: {err}") from err
        finally:
            sys.path.remove(str(code_uri))
            own: dict[str, ModuleType] = {}
            for name in set(sys.modules) - before:
                file = getattr(sys.modules[name], "__file__", None) or ""
                if file.startswith(prefix) or name == top or name.startswith(top + "."):
                    own[name] = sys.modules.pop(name)
            sys.modules.update(shadowed)
    return module, own


def load_function_module(code_uri: Path, module_name: str) -> ModuleType:
    """Import `module_name` from `code_uri` isolated from other functions' modules."""
    module, _ = _import_isolated(code_uri.resolve(), module_name)
    return module


@dataclass
class LoadedFunction:
    """A function's handler and its own modules; `reload()` swaps in fresh code."""

    code_uri: Path
    handler_name: str
    handler: Handler
    modules: dict[str, ModuleType]
    mtimes: dict[str, int] = field(default_factory=dict)

    def changed(self) -> bool:
        """True when a .py file under CodeUri was added, removed or modified since loading."""
        return _source_mtimes(self.code_uri) != self.mtimes

    def reload(self) -> None:
        """Re-import this function's own modules (not the layer's) and swap the handler."""
        for path, mtime in _source_mtimes(self.code_uri).items():
            if self.mtimes.get(path) != mtime:
                # .pyc validity is checked by whole-second mtime + size: an edit within the
                # same second keeping the size would otherwise load the stale bytecode.
                with contextlib.suppress(OSError):
                    os.remove(importlib.util.cache_from_source(path))
        fresh = load_handler(self.code_uri, self.handler_name)
        self.handler, self.modules, self.mtimes = fresh.handler, fresh.modules, fresh.mtimes


def load_handler(code_uri: Path, handler: str) -> LoadedFunction:
    """Load `module.function` (the template's Handler) from `code_uri`, isolated."""
    code_uri = code_uri.resolve()
    if not code_uri.is_dir():
        raise HandlerLoadError(f"CodeUri {code_uri} is not a folder")
    module_name, _, function_name = handler.rpartition(".")
    mtimes = _source_mtimes(code_uri)
    module, own = _import_isolated(code_uri, module_name)
    target = getattr(module, function_name, None)
    if not callable(target):
        raise HandlerLoadError(f"{code_uri}/{module_name}: {function_name!r} is not callable")
    return LoadedFunction(code_uri, handler, target, own, mtimes)


class Reloader:
    """Polls the functions' source files and reloads a function whose code changed."""

    def __init__(self, functions: Iterable[LoadedFunction], interval: float = 0.5) -> None:
        self._functions = list(functions)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lucid-reload", daemon=True)

    def start(self) -> None:
        """Start polling in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def check_once(self) -> list[LoadedFunction]:
        """Reload every changed function now; returns the ones reloaded."""
        reloaded = []
        for function in self._functions:
            if not function.changed():
                continue
            try:
                function.reload()
            except HandlerLoadError:
                _log.exception("reload of %s failed; keeping the previous code", function.code_uri)
                function.mtimes = _source_mtimes(function.code_uri)
                continue
            _log.warning("reloaded %s", function.code_uri)
            reloaded.append(function)
        return reloaded

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check_once()
