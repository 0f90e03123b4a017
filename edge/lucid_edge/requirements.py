"""`lucid requirements`: the layer's declared set, which `make lock` compiles.

pyproject.toml declares ranges; `make lock` resolves them once into `requirements.lock`, exact
versions with every file's hash, which the virtualenv is installed from. `sam build` installs
`shared/requirements.txt` into the layer: `make lock` compiles it from this command's output
(pyproject.toml's `[project] dependencies` minus what Lambda's runtime already provides,
`[tool.lucid.layer] provided-by-runtime`) constrained by the lock, so the layer gets exactly the
lock's versions and only what its set needs. The local edge's and the development sets are
extras (`edge`, `dev`) and never reach it. tests/test_dependencies.py fails whenever the files
and pyproject.toml disagree.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_PYPROJECT = Path("pyproject.toml")
REQUIREMENTS = Path("shared/requirements.txt")
LOCK = Path("requirements.lock")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def distribution_name(requirement: str) -> str:
    """The normalised (PEP 503) distribution name a requirement string names."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def layer_requirements(pyproject: Path) -> str:
    """The layer's declared set for the project at `pyproject`: what `make lock` compiles."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    runtime: list[str] = project["project"]["dependencies"]
    layer_settings = project.get("tool", {}).get("lucid", {}).get("layer", {})
    provided = {distribution_name(name) for name in layer_settings.get("provided-by-runtime", [])}
    shipped = [req for req in runtime if distribution_name(req) not in provided]
    header = [
        "# What the layer runs on: pyproject.toml's [project] dependencies. `make lock` compiles",
        f"# this with {LOCK}'s versions into {REQUIREMENTS}.",
    ]
    if provided:
        header.append(f"# Left out, provided by Lambda's runtime: {', '.join(sorted(provided))}.")
    return "\n".join([*header, *shipped]) + "\n"


def register(subparsers: Any) -> None:
    """Add the `requirements` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "requirements",
        help=f"print the layer's declared set from pyproject.toml (`make lock` compiles it into"
        f" {REQUIREMENTS})",
    )
    parser.add_argument("--pyproject", default=DEFAULT_PYPROJECT, type=Path)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the layer's declared set; 2 with one line on stderr when pyproject.toml cannot be
    read or declares no `[project] dependencies`."""
    try:
        text = layer_requirements(args.pyproject)
    except OSError as error:
        print(
            f"lucid requirements: cannot read {args.pyproject}: {error.strerror}", file=sys.stderr
        )
        return 2
    except KeyError:
        print(
            f"lucid requirements: {args.pyproject} declares no [project] dependencies",
            file=sys.stderr,
        )
        return 2
    except (TypeError, ValueError) as error:  # tomllib.TOMLDecodeError, a malformed entry
        print(f"lucid requirements: {args.pyproject} is not usable: {error}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0
