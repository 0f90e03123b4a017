"""Build one Lambda artifact (a function or the layer) with its bytecode compiled ahead of time.

Run by infra/Makefile, which `sam build` runs in a scratch copy of the resource's CodeUri (the
current directory) with ARTIFACTS_DIR set:

    python3.11 infra/lambda_build.py function "$ARTIFACTS_DIR"   # task root:  /var/task
    python3.11 infra/lambda_build.py layer "$ARTIFACTS_DIR"      # layer root: /opt, code in python/

Steps: pip-install requirements.txt (wheels for Lambda's platform), copy the code, remove what
Lambda never reads, compile our own modules to `__pycache__/<name>.cpython-311.pyc` beside their
source, and the installed (third-party) ones to sourceless bytecode: `<name>.pyc` in place of
`<name>.py`.

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

Why third-party code ships without its sources: they are 13 MB of the layer's 44 (issue 9's target
is 30 MB unzipped), and Python loads a sourceless `.pyc` as fast as a cached one. The trade-off:
a traceback through FastAPI, pydantic, redis-py, ... still names the file and line but cannot
print the line's text, and `inspect.getsource` fails on those modules. Our own code (the lucid
package, each function's modules) keeps its sources, so our frames print in full. Packages that
read their own source at run time keep it too (KEEP_SOURCE).
"""

from __future__ import annotations

import argparse
import compileall
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Lambda's python3.11 runtime on x86_64 runs Amazon Linux 2 (glibc 2.26): manylinux2014 wheels,
# the same platforms `sam build`'s own Python builder accepts for it (aws-lambda-builders,
# python_pip/packager.py, DependencyBuilder.compatible_platforms).
LAMBDA_PYTHON = (3, 11)
LAMBDA_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")
# Where the modules of each kind of artifact live, in the artifact and in Lambda.
LAYOUT = {"function": (".", "/var/task"), "layer": ("python", "/opt/python")}
# What the build copies from the source folder into the artifact: everything but these.
NOT_SHIPPED = (
    "requirements.txt",
    "requirements.in",
    "Makefile",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "tests",
)
# What pip installs that no import reads: console scripts (bin/), type stubs, packages' tests, the
# C sources of compiled extensions, and source maps (a browser's developer tools ask for them;
# nothing serves them).
STRIPPED_SUFFIXES = (".pyi", ".c", ".h", ".js.map", ".css.map")
# Read by no code path of the gateway: the Swagger UI that Powertools' own REST event handler can
# serve (1.7 MB; our functions are FastAPI apps with interactive docs off).
STRIPPED_ASSETS = ("aws_lambda_powertools/event_handler/openapi/swagger_ui/*.min.*",)
# Installed packages that read their own source at run time: anyio parses its __init__ to set up
# its lazy imports (anyio/_lazyimport.py, _build_lazy_map) and imports eagerly without it.
KEEP_SOURCE = ("anyio",)


def install_requirements(requirements: Path, target: Path) -> None:
    """pip-install `requirements` into `target` as wheels built for Lambda's platform. `make
    lock` compiles the file from requirements.lock with every file's hash, so pip (in its
    --require-hashes mode) installs the versions the tests ran on, whatever the index serves."""
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
    for pattern in STRIPPED_ASSETS:
        for asset in target.glob(pattern):
            asset.unlink()
    # Extension modules built for other Pythons (pymongo's cp311 wheels also carry the cp38-cp310
    # builds of their two extensions, 2.2 MB): Python 3.11 only loads `<name>.cpython-311-*.so`,
    # `<name>.abi3.so` or `<name>.so`, so these can never load.
    own_tag = f".cpython-{LAMBDA_PYTHON[0]}{LAMBDA_PYTHON[1]}-"
    for library in target.rglob("*.cpython-*.so"):
        if own_tag not in library.name:
            library.unlink()


def is_package_dir(folder: Path) -> bool:
    """True for a folder Python imports as a regular package."""
    return (folder / "__init__.py").is_file()


def compile_bytecode(code_root: Path, mounted_at: str, installed: set[str]) -> None:
    """Compile every module for optimisation level 0, unchecked-hash: the entries of `code_root`
    named in `installed` (third-party) to sourceless `<name>.pyc` files replacing their sources
    (but KEEP_SOURCE), the others (our code) to `__pycache__/<name>.cpython-311.pyc`."""
    # The builder's PYTHONPYCACHEPREFIX would send the .pyc files elsewhere; Lambda sets none.
    sys.pycache_prefix = None
    for entry in sorted(code_root.iterdir()):
        sourceless = entry.name in installed and entry.name not in KEEP_SOURCE
        options: dict[str, Any] = {
            "quiet": 1,
            "optimize": 0,
            "invalidation_mode": py_compile.PycInvalidationMode.UNCHECKED_HASH,
            "stripdir": str(code_root),
            "prependdir": mounted_at,
            "legacy": sourceless,
        }
        if entry.is_dir():
            compiled = compileall.compile_dir(entry, workers=0, **options)
        elif entry.suffix == ".py":
            compiled = compileall.compile_file(entry, **options)
        else:
            continue
        if not compiled:
            raise SystemExit(f"compileall failed in {entry}: Lambda would compile at cold start")
        if sourceless:
            for source in [entry] if entry.is_file() else entry.rglob("*.py"):
                source.unlink()


def build(kind: str, source: Path, artifacts: Path) -> None:
    """Build the `kind` ("function" or "layer") from `source` into `artifacts`."""
    code_dir, mounted_at = LAYOUT[kind]
    code_root = artifacts / code_dir
    code_root.mkdir(parents=True, exist_ok=True)
    requirements = source / "requirements.txt"
    if requirements.is_file():
        install_requirements(requirements, code_root)
    installed = {entry.name for entry in code_root.iterdir()}
    copy_code(source, code_root)
    strip(code_root)
    compile_bytecode(code_root, mounted_at, installed)


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
