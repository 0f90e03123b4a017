"""Build one Lambda artifact (a function or the layer) with its bytecode compiled ahead of time.

Run by infra/Makefile, which `sam build` runs in a scratch copy of the resource's CodeUri (the
current directory) with ARTIFACTS_DIR set:

    python3.11 infra/lambda_build.py function "$ARTIFACTS_DIR"   # task root:  /var/task
    python3.11 infra/lambda_build.py layer "$ARTIFACTS_DIR"      # layer root: /opt, code in python/

Steps: pip-install requirements.txt (wheels for Lambda's platform), copy the code, remove what
Lambda never reads, compile every module to `__pycache__/<name>.cpython-311.pyc`.

Why the bytecode is built this way:
- Lambda's /var/task and /opt are read-only, so an artifact without .pyc files is compiled from
  source at every cold start: 1.2-1.4 s per function against 0.2-0.45 s with them
  (`make bench coldstart`).
- Lambda's python3.11 runtime starts `/var/lang/bin/python3.11 /var/runtime/bootstrap.py` (the
  image's /var/runtime/bootstrap), without -O, in an environment with no PYTHONOPTIMIZE or
  PYTHONPYCACHEPREFIX: it reads the optimisation-level-0 file in the `__pycache__` folder beside
  each source, so that is the one file written per module.
- Unchecked-hash .pyc files (PEP 552) are used without comparing the source's mtime, which does
  not survive deployment: `sam package` zips every file without a date (aws-sam-cli,
  samcli/lib/package/utils.py make_zip_with_permissions), so Lambda's sources all date from 1980
  and a timestamp .pyc would never match. Nothing changes a deployed source, so checking its hash
  would only cost time at every import.
- Code objects record the path the module has in Lambda (/var/task/..., /opt/python/...), not the
  build folder: the same sources give the same bytes, build after build.
"""

from __future__ import annotations

import argparse
import compileall
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

# Lambda's python3.11 runtime on x86_64 runs Amazon Linux 2 (glibc 2.26): manylinux2014 wheels,
# the same platforms `sam build`'s own Python builder accepts for it (aws-lambda-builders,
# python_pip/packager.py, DependencyBuilder.compatible_platforms).
LAMBDA_PYTHON = (3, 11)
LAMBDA_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")
# Where the modules of each kind of artifact live, in the artifact and in Lambda.
LAYOUT = {"function": (".", "/var/task"), "layer": ("python", "/opt/python")}
# What the build copies from the source folder into the artifact: everything but these.
NOT_SHIPPED = ("requirements.txt", "Makefile", "__pycache__", "*.pyc", "*.egg-info", "tests")
# What pip installs that no import reads: console scripts (bin/), type stubs, packages' tests,
# and source maps (a browser's developer tools ask for them; nothing serves them).
STRIPPED_SUFFIXES = (".pyi", ".js.map", ".css.map")


def install_requirements(requirements: Path, target: Path) -> None:
    """pip-install `requirements` into `target` as wheels built for Lambda's platform."""
    lines = [line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines()]
    if not any(lines):
        return
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(  # noqa: S603 - our own interpreter's pip, with arguments built here
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            # The target folder is installed into from scratch; the build interpreter's own
            # packages are irrelevant to it.
            "--no-warn-conflicts",
            "--no-compile",
            "--only-binary=:all:",
            *platforms,
            "--implementation=cp",
            f"--python-version={LAMBDA_PYTHON[0]}.{LAMBDA_PYTHON[1]}",
            "--target",
            str(target),
            "--requirement",
            str(requirements),
        ],
        check=True,
    )


def copy_code(source: Path, target: Path) -> None:
    """Copy the resource's own code (modules, packages and data files) into `target`."""
    ignore = shutil.ignore_patterns(*NOT_SHIPPED)
    for entry in sorted(source.iterdir()):
        if ignore(str(source), [entry.name]):
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(entry, target / entry.name)


def strip(target: Path) -> None:
    """Remove what Lambda never imports. Package metadata (*.dist-info) stays: some packages
    read their own version and entry points through importlib.metadata at run time."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    for folder in sorted(target.rglob("tests"), reverse=True):
        if folder.is_dir() and (folder.parent == target or is_package_dir(folder.parent)):
            shutil.rmtree(folder)
    for leftover in [*target.rglob("__pycache__"), *target.rglob("*.pyc")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.exists():
            leftover.unlink()
    for suffix in STRIPPED_SUFFIXES:
        for stub in target.rglob(f"*{suffix}"):
            stub.unlink()


def is_package_dir(folder: Path) -> bool:
    """True for a folder Python imports as a regular package."""
    return (folder / "__init__.py").is_file()


def compile_bytecode(code_root: Path, mounted_at: str) -> None:
    """Write an unchecked-hash, optimisation-level-0 .pyc in __pycache__ for every module."""
    # The builder's PYTHONPYCACHEPREFIX would send the .pyc files elsewhere; Lambda sets none.
    sys.pycache_prefix = None
    compiled = compileall.compile_dir(
        code_root,
        quiet=1,
        workers=0,
        optimize=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        stripdir=str(code_root),
        prependdir=mounted_at,
    )
    if not compiled:
        raise SystemExit(f"compileall failed in {code_root}: Lambda would compile at cold start")


def build(kind: str, source: Path, artifacts: Path) -> None:
    """Build the `kind` ("function" or "layer") from `source` into `artifacts`."""
    code_dir, mounted_at = LAYOUT[kind]
    code_root = artifacts / code_dir
    code_root.mkdir(parents=True, exist_ok=True)
    requirements = source / "requirements.txt"
    if requirements.is_file():
        install_requirements(requirements, code_root)
    copy_code(source, code_root)
    strip(code_root)
    compile_bytecode(code_root, mounted_at)


def main() -> None:
    """Command line: `lambda_build.py {function,layer} ARTIFACTS_DIR`, run in the source folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(LAYOUT))
    parser.add_argument("artifacts_dir", type=Path)
    args = parser.parse_args()
    if sys.version_info[:2] != LAMBDA_PYTHON:
        raise SystemExit(
            f"{sys.executable} is Python {sys.version_info[0]}.{sys.version_info[1]}: bytecode for"
            f" Lambda's python{LAMBDA_PYTHON[0]}.{LAMBDA_PYTHON[1]} needs that interpreter"
            " (make PYTHON=/path/to/python3.11)"
        )
    build(args.kind, Path.cwd(), args.artifacts_dir.resolve())


if __name__ == "__main__":
    main()
