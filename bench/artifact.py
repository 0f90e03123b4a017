"""The built Lambda artifact: `sam build` output, loaded and copied as Lambda would see it.

Shared by the cold-start benchmark (bench/coldstart.py) and the test of the built artifact
(tests/infra/test_built_artifact.py), so that both measure and check the same thing:

- `sam_build()` runs the real `sam build` (aws-sam-cli from .venv-sam, installed by
  `make sam-build`) into .aws-sam/artifact/, reused while its inputs are unchanged;
  `make_build()` builds a folder outside the template by the same make rules.
- `load_artifact()` reads a build's template: the layer and each function with its handler and
  the probe (bench/probes.py) that invokes it without network.
- `readonly_copy()` copies a built folder and removes write permission (Lambda's /var/task and
  /opt are read-only), optionally without its __pycache__ folders: the same artifact as a build
  without ahead-of-time bytecode.
- `tree_size()` / `zipped_size()`: bytes unzipped, and zipped as `sam package` zips.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.probes import Probe, probe_for
from lucid_edge.intrinsics import load_yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
BUILD_DIR = ROOT / ".aws-sam" / "artifact"
# Everything `sam build` reads; a change to any of these rebuilds.
BUILD_INPUTS = ("infra", "shared", "functions")


@dataclass(frozen=True)
class BuiltFunction:
    """One function of the built template."""

    name: str
    task_root: Path
    handler: str
    probe: Probe


@dataclass(frozen=True)
class Artifact:
    """The output of `sam build`: every function and the layer's python/ folder."""

    root: Path
    layer: Path
    functions: tuple[BuiltFunction, ...]


def inputs_digest(root: Path = ROOT, folders: Iterable[str] = BUILD_INPUTS) -> str:
    """A digest of every file under `folders` of `root` (bytecode caches excluded)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def sam_build(build_dir: Path = BUILD_DIR) -> Artifact:
    """`sam build` of infra/template.yaml into `build_dir`, unless its inputs are unchanged."""
    stamp = build_dir / "inputs.sha256"
    digest = inputs_digest()
    if not (stamp.is_file() and stamp.read_text() == digest):
        if not SAM.is_file():
            raise RuntimeError(f"{SAM} is missing: `make sam-build` installs aws-sam-cli there")
        shutil.rmtree(build_dir, ignore_errors=True)
        _run(
            [str(SAM), "build", "--template-file", str(TEMPLATE), "--build-dir", str(build_dir)],
            cwd=ROOT,
            env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"},
        )
        stamp.write_text(digest)
    return load_artifact(build_dir)


def make_build(source: Path, logical_id: str, build_dir: Path) -> Path:
    """Build `source` as `sam build` builds a resource `logical_id` with `BuildMethod: makefile`:
    a scratch copy of the folder, `make build-<logical_id>` there with ARTIFACTS_DIR set. For
    folders that are not in the template (the benchmark's hello-world function, extra layers).
    Reused while `source` and the build rules are unchanged."""
    artifacts = build_dir / logical_id
    stamp = build_dir / f"{logical_id}.sha256"
    digest = hashlib.sha256(
        (inputs_digest(ROOT, ("infra",)) + inputs_digest(source.parent, (source.name,))).encode()
    ).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and artifacts.is_dir():
        return artifacts
    shutil.rmtree(artifacts, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(source, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        _run(
            ["make", "--makefile", str(ROOT / "infra" / "Makefile"), f"build-{logical_id}"],
            cwd=Path(scratch),
            env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        )
    stamp.write_text(digest)
    return artifacts


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    completed = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(args)} failed ({completed.returncode}):\n{output}")


def load_artifact(build_dir: Path) -> Artifact:
    """The functions and the layer of the built template in `build_dir`."""
    # The local edge's reader of CloudFormation YAML (short tags in long form): cfn-lint lives in
    # .venv-sam, and reading the built template's resources needs no linter.
    resources = load_yaml(build_dir / "template.yaml")["Resources"]
    (layer,) = [r for r in resources.values() if r["Type"] == "AWS::Serverless::LayerVersion"]
    authorizers = _authorizer_functions(resources)
    functions = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        probe = probe_for(name in authorizers, _routes(props))
        functions.append(BuiltFunction(name, build_dir / props["CodeUri"], props["Handler"], probe))
    return Artifact(
        build_dir, build_dir / layer["Properties"]["ContentUri"] / "python", tuple(functions)
    )


def _authorizer_functions(resources: dict[str, Any]) -> set[str]:
    names = set()
    for resource in resources.values():
        authorizers = resource.get("Properties", {}).get("Auth", {}).get("Authorizers", {})
        for authorizer in authorizers.values():
            names.add(authorizer["FunctionArn"]["Fn::GetAtt"][0])
    return names


def _routes(props: dict[str, Any]) -> set[tuple[str, str]]:
    routes = set()
    for event in (props.get("Events") or {}).values():
        if event["Type"] == "HttpApi":
            routes.add((event["Properties"]["Method"], event["Properties"]["Path"]))
    return routes


def readonly_copy(source: Path, target: Path, *, bytecode: bool = True) -> Path:
    """Copy `source` to `target` without write permission; without `bytecode`, no __pycache__."""
    ignore = None if bytecode else shutil.ignore_patterns("__pycache__")
    shutil.copytree(source, target, ignore=ignore, symlinks=True)
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return target


def make_writable(tree: Path) -> None:
    """Undo `readonly_copy`'s permissions so that `tree` can be deleted."""
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def tree_size(root: Path) -> int:
    """Bytes of every file under `root` (what Lambda counts as unzipped size)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def zipped_size(root: Path, zip_path: Path) -> int:
    """Bytes of `root` zipped the way `sam package` does (deflate, one entry per file, Unix
    permissions, no dates: aws-sam-cli samcli/lib/package/utils.py make_zip_with_permissions)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, _, files in os.walk(root, followlinks=True):
            for name in sorted(files):
                full = Path(folder) / name
                info = zipfile.ZipInfo(str(full.relative_to(root)))
                info.create_system = 3
                info.external_attr = (full.stat().st_mode | 0o755) << 16
                archive.writestr(info, full.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return zip_path.stat().st_size
