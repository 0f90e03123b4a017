"""Reading a compiled requirements file: requirements.lock and what `make lock` derives from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from lucid_edge.requirements import distribution_name


@dataclass(frozen=True)
class Pin:
    """One line of a compiled requirements file: `name==version ; marker` and its hashes."""

    name: str
    version: str
    requirement: Requirement
    hashes: frozenset[str]

    def applies(self) -> bool:
        """True when its environment marker (if any) holds for this interpreter and platform."""
        marker = self.requirement.marker
        return marker is None or marker.evaluate()


def read_pins(path: Path) -> dict[str, Pin]:
    """The pins of a compiled requirements file (`make lock`'s output), by normalised name.

    Refuses a requirement that is not pinned to one exact version: such a line would let pip
    choose whatever the index serves when it runs."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    pins: dict[str, Pin] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        hashes = frozenset(w.removeprefix("--hash=") for w in words if w.startswith("--hash="))
        requirement = Requirement(" ".join(w for w in words if not w.startswith("--hash=")))
        versions = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if len(versions) != 1 or len(requirement.specifier) != 1:
            raise ValueError(f"{path}: not pinned to one version: {line!r}")
        name = distribution_name(requirement.name)
        pin = Pin(name, versions[0], requirement, hashes)
        # A universal lock may pin one package twice, for platforms its markers tell apart.
        if name not in pins or pin.applies():
            pins[name] = pin
    return pins
