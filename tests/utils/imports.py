"""The imports of a source tree, read with `ast` (lazy imports inside functions included)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    """`lucid.auth.tokens` for <root>/auth/tokens.py (`lucid.auth` for its __init__.py)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, names) per imported name of `path`, most specific first: `from a import b` gives
    ["a.b", "a"] (b may be a module or a name in a), `import a.b` gives ["a.b"]."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, [alias.name]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, [f"{base}.{alias.name}", base]


def third_party(root: Path, own: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level modules imported under `root` that are neither stdlib nor in `own`, with the
    files importing each (relative to `root`'s parent)."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for _, names in imports_of(path, root):
            top = names[-1].split(".")[0]
            if top and top not in sys.stdlib_module_names and top not in own:
                found.setdefault(top, set()).add(str(path.relative_to(root.parent)))
    return found
