"""The built Lambda artifact, loaded as Lambda loads it: `sam build`, a read-only copy, a probe.

Shared by the cold-start benchmark (bench/coldstart.py) and the test of the built artifact
(tests/infra/test_built_artifact.py), so that both measure and check the same thing:

- `sam_build()` runs the real `sam build` (aws-sam-cli from .venv-sam, installed by
  `make sam-build`) into .aws-sam/artifact/, reused while its inputs are unchanged.
- `readonly_copy()` copies a built folder and removes write permission (Lambda's /var/task and
  /opt are read-only), optionally without its __pycache__ folders: the same artifact as a build
  without ahead-of-time bytecode.
- `invoke_cold()` runs bench/lambda_probe.py in a fresh `python -S -I -B` with only a task root
  and the layer on sys.path: one cold start, timed, with the modules compiled from source.
- `PROBES` names, for each function, an invocation that needs no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
BUILD_DIR = ROOT / ".aws-sam" / "artifact"
PROBE = Path(__file__).resolve().with_name("lambda_probe.py")
# Everything `sam build` reads; a change to any of these rebuilds.
BUILD_INPUTS = ("infra", "shared", "functions")
# What a deployed stage sets (template Globals), with endpoints nothing listens on: the probes
# take routes that need no network, and an accidental connection fails at once.
LAMBDA_ENV = {
    "STAGE": "dev",
    "SERVICE_NAME": "lucid-api-gateway",
    "LOG_LEVEL": "INFO",
    "AUTH_SERVICE_URL": "https://api.lucid.test",
    "JWT_SECRET_KEY": "probe-only-" + "k" * 40,
    "MONGODB_URI": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500",
    "REDIS_URI": "redis://127.0.0.1:9/0",
    # The tiered limit is one Redis round trip per request: network, left out of the probe.
    "RATE_LIMIT_ENABLED": "false",
    "POWERTOOLS_SERVICE_NAME": "lucid-api-gateway",
    "POWERTOOLS_METRICS_NAMESPACE": "Lucid",
    # What Lambda's runtime sets for every function.
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "probe",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
}


@dataclass(frozen=True)
class Probe:
    """An invocation of one function that needs no network, and the answer it must get."""

    method: str
    path: str
    status: int
    authorizer: bool = False  # an authorizer REQUEST event instead of an HTTP request


# Keyed by a route the function serves (from the template), so they follow the routes around.
PROBES = (
    Probe("GET", "/health", 200),
    Probe("GET", "/auth/status", 200),  # no token: anonymous, decided without Redis or MongoDB
    Probe("GET", "/users/me", 401),  # no authorizer context: refused before any lookup
    Probe("GET", "/sessions", 401),
    Probe("GET", "/chain/info", 503),  # backend URL unset: 503 naming the setting
    Probe("GET", "/users/me", 403, authorizer=True),  # a malformed token: denied
)


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
    template, _ = decode(str(build_dir / "template.yaml"))
    assert template is not None
    resources = template["Resources"]
    (layer,) = [r for r in resources.values() if r["Type"] == "AWS::Serverless::LayerVersion"]
    authorizers = _authorizer_functions(resources)
    functions = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        probe = _probe_for(name in authorizers, _routes(props))
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


def _probe_for(is_authorizer: bool, routes: set[tuple[str, str]]) -> Probe:
    for probe in PROBES:
        if probe.authorizer != is_authorizer:
            continue
        if is_authorizer or {(probe.method, probe.path), ("ANY", probe.path)} & routes:
            return probe
    raise LookupError(f"no probe in bench/artifact.py PROBES for a function serving {routes}")


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


def event_for(probe: Probe) -> dict[str, Any]:
    """A real API Gateway payload 2.0 event (HTTP request or authorizer) for `probe`."""
    events = ROOT / "tests" / "events"
    if probe.authorizer:
        event: dict[str, Any] = json.loads((events / "http_api_v2_authorizer.json").read_text())
        event["identitySource"] = ["Bearer not-a-jwt"]
        event["headers"]["authorization"] = "Bearer not-a-jwt"
        event["routeKey"] = event["requestContext"]["routeKey"] = f"{probe.method} {probe.path}"
        event["rawPath"] = event["requestContext"]["http"]["path"] = probe.path
        event["routeArn"] = (
            f"arn:aws:execute-api:us-east-1:123456789012:api-id/$default/GET{probe.path}"
        )
        event.pop("pathParameters", None)
        return event
    event = json.loads((events / "http_api_v2.json").read_text())
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{probe.method} {probe.path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = probe.path
    event["requestContext"]["http"]["method"] = probe.method
    event["requestContext"]["stage"] = "$default"
    for key in ("cookies", "queryStringParameters", "pathParameters"):
        event.pop(key, None)
    return event


def status_of(answer: dict[str, Any], probe: Probe) -> int:
    """The HTTP status the client gets from `answer` (an authorizer's simple response decides
    between API Gateway's 403 and calling the route)."""
    if probe.authorizer:
        return {True: 200, False: 403}[answer["isAuthorized"]]
    return int(answer["statusCode"])


def invoke_cold(
    path: Iterable[Path],
    handler: str,
    event: dict[str, Any],
    *,
    tracer: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One cold start in a fresh interpreter with only `path` (and the stdlib) importable."""
    config = {"path": [str(p) for p in path], "handler": handler, "event": event, "tracer": tracer}
    completed = subprocess.run(
        [sys.executable, "-S", "-I", "-B", str(PROBE), json.dumps(config)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **LAMBDA_ENV, **(extra_env or {})},
        cwd="/",
        check=False,
        timeout=120,
    )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("LAMBDA-PROBE "):
            report: dict[str, Any] = json.loads(line.removeprefix("LAMBDA-PROBE "))
            return report
    raise RuntimeError(
        f"{handler} from {config['path']} did not answer (exit {completed.returncode}):\n"
        + (completed.stdout + completed.stderr)[-4000:]
    )


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
