"""The layer's import rule: arrows point down only.

    lucid.web                                   may import anything below it
    lucid.auth, users, sessions, ratelimit, proxy   domain: never FastAPI, Starlette or lucid.web
    lucid.store                                 data: no domain package, no web
    lucid.config, errors, observability, identity   foundation: nothing above them
    lucid_edge                                  never imported by the layer (local-only code)

Every `import` of every module is read with `ast` (lazy imports inside functions included), so a
new module that breaks the rule fails here, naming the module, the line and the import.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.imports import imports_of, module_name

LAYER = Path(__file__).resolve().parents[2] / "shared" / "lucid"

WEB_ONLY = ("fastapi", "starlette", "lucid.web")
DOMAIN = ("lucid.auth", "lucid.users", "lucid.sessions", "lucid.ratelimit", "lucid.proxy")
FOUNDATION = (
    "lucid.config",
    "lucid.errors",
    "lucid.observability",
    "lucid.log_masking",
    "lucid.identity",
    "lucid.lambda_result",
)


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def rule_broken(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when the arrow points down."""
    if _within(imported, ("lucid_edge",)):
        return "the layer never imports the local edge (what only runs locally is not shipped)"
    if _within(importer, ("lucid.web",)):
        return None
    if _within(imported, WEB_ONLY):
        return "only lucid.web may import FastAPI, Starlette or lucid.web"
    if _within(importer, ("lucid.store",)) and _within(imported, DOMAIN):
        return "lucid.store is below every domain package"
    if _within(importer, FOUNDATION) and _within(imported, ("lucid.store", *DOMAIN)):
        return "config, errors, observability and identity are below everything else"
    return None


def violations(root: Path) -> list[str]:
    """Every import under `root` (a `lucid` package folder) that breaks the rule."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        for line, names in imports_of(path, root):
            for imported in names:
                reason = rule_broken(importer, imported)
                if reason is not None:
                    where = path.relative_to(root.parent)
                    found.append(f"{where}:{line} ({importer}) imports {imported}: {reason}")
                    break
    return found


def test_every_import_of_the_layer_points_down() -> None:
    assert violations(LAYER) == []


def test_the_layer_is_laid_out_by_domain() -> None:
    packages = {p.parent.name for p in LAYER.glob("*/__init__.py")}
    assert packages == {"web", "auth", "users", "sessions", "ratelimit", "proxy", "store"}
    top = {p.stem for p in LAYER.glob("*.py")}
    top_modules = {
        "config",
        "errors",
        "observability",
        "log_masking",
        "identity",
        "secret_store",
        "coldstart",
        "lambda_result",
    }
    assert top == {"__init__", *top_modules}


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("auth/bad.py", "from fastapi import Depends\n", "lucid/auth/bad.py:1 (lucid.auth.bad) "),
        ("users/bad.py", "def f():\n    import lucid.web.deps\n", "imports lucid.web.deps"),
        ("users/bad.py", "from ..web import deps\n", "imports lucid.web.deps"),
        ("store/bad.py", "from lucid.sessions.schemas import x\n", "below every domain"),
        ("identity.py", "from lucid.store import documents\n", "below everything else"),
        (
            "ratelimit/bad.py",
            "from starlette.types import Scope\n",
            "imports starlette.types.Scope",
        ),
        (
            "web/bad.py",
            "from lucid_edge.local import start_redis\n",
            "never imports the local edge",
        ),
    ],
)
def test_a_module_importing_upwards_is_named_with_its_import(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    # GIVEN a layer with one module that imports against the arrows
    root = tmp_path / "lucid"
    for package in ("auth", "users", "store", "ratelimit", "web"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "web" / "deps.py").write_text("from fastapi import Depends\n")
    (root / path).write_text(source)
    # WHEN the rule is checked THEN exactly that module fails, naming the import
    (found,) = violations(root)
    assert expected in found
