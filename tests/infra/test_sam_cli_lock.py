"""The SAM CLI's virtualenv (.venv-sam) is locked like .venv: infra/sam-cli.in declares it,
`make lock` compiles infra/sam-cli.lock from that (exact versions and hashes, dependencies of
dependencies included), and make installs .venv-sam afresh from the lock whenever it changes,
hash-checked. cfn-lint and the SAM transform the tests run (tests/infra/sam_tools.py) come from
there, so these tests fail when the lock no longer answers the declaration, holds a package
nothing declared needs, or .venv-sam is not the lock (run `make`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from packaging.requirements import Requirement

from lucid_edge.requirements import distribution_name
from tests.infra.sam_tools import SAM_PYTHON, WORKER
from tests.utils.imports import third_party
from tests.utils.lock import read_pins

ROOT = Path(__file__).resolve().parents[2]
DECLARATION = ROOT / "infra" / "sam-cli.in"
LOCK = ROOT / "infra" / "sam-cli.lock"
# Each installed distribution's version and declared requirements, as .venv-sam's Python sees them.
_INSTALLED = """
import importlib.metadata, json
print(json.dumps({d.metadata["Name"]: [d.version, d.requires or []]
                  for d in importlib.metadata.distributions()}))
"""


def _declared() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in DECLARATION.read_text().splitlines())
    return [line for line in lines if line]


def _locked() -> dict[str, str]:
    return {name: pin.version for name, pin in read_pins(LOCK).items() if pin.applies()}


def _installed() -> dict[str, tuple[str, list[str]]]:
    """What .venv-sam holds: per distribution (normalised name), its version and requirements."""
    completed = subprocess.run(
        [str(SAM_PYTHON), "-I", "-c", _INSTALLED],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: dict[str, tuple[str, list[str]]] = json.loads(completed.stdout)
    return {
        distribution_name(name): (version, requires) for name, (version, requires) in found.items()
    }


def _needed(requirements: list[str], installed: dict[str, tuple[str, list[str]]]) -> set[str]:
    """Every distribution `requirements` install, following .venv-sam's metadata (extras asked
    for included, environment markers evaluated for this Python, the one .venv-sam runs)."""
    needed: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(text) for text in requirements]
    while todo:
        requirement = todo.pop()
        name, extras = distribution_name(requirement.name), frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        needed.add(name)
        for text in installed[name][1]:
            dependency = Requirement(text)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append(dependency)
    return needed


def test_the_lock_pins_the_declared_sam_cli_within_its_range() -> None:
    # GIVEN what infra/sam-cli.in declares (aws-sam-cli, which brings cfn-lint and the transform)
    declared = _declared()
    assert [distribution_name(text) for text in declared] == ["aws-sam-cli"]
    locked = _locked()
    for text in declared:
        # THEN the lock pins it at a version the range allows; if not, run `make lock`
        version = locked.get(distribution_name(text))
        assert version is not None, f"{text} is not in {LOCK.name}: run `make lock`"
        assert Requirement(text).specifier.contains(version, prereleases=True), (text, version)


def test_the_lock_holds_exactly_what_the_sam_cli_needs_and_venv_sam_is_the_lock() -> None:
    # GIVEN .venv-sam, which make installs from the lock, and the lock's pins for this platform
    installed = _installed()
    locked = _locked()
    # THEN it holds every locked version and nothing else (pip, which installs, aside): the
    # tests' cfn-lint and SAM transform are the locked ones
    versions = {name: version for name, (version, _) in installed.items() if name != "pip"}
    assert versions == locked, "run make: .venv-sam is not infra/sam-cli.lock"
    # AND the lock is exactly what the declaration needs, followed through the metadata
    assert _needed(_declared(), installed) == set(locked)
    assert {"aws-sam-translator", "cfn-lint"} <= set(locked)


def test_only_the_worker_imports_the_sam_cli_s_modules() -> None:
    # GIVEN the modules .venv-sam has that .venv must not lend the tests: cfn-lint stays in .venv
    # as moto[server]'s dependency, so an in-process import would pass unnoticed
    sam_only = {"cfnlint", "samtranslator", "samcli"}
    importers: set[str] = set()
    # (the layer, the edge and the functions may import only their declared sets:
    # tests/test_dependencies.py)
    for folder in ("tests", "bench", "infra"):
        found = third_party(ROOT / folder, ())
        importers |= set().union(*(found.get(module, set()) for module in sam_only))
    # THEN only the worker, which .venv-sam's Python runs, imports them
    assert importers == {str(WORKER.relative_to(ROOT))}
