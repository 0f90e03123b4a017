"""How the built functions are started: Lambda's environment, one invocation per function that
needs no network, and one cold start in a fresh interpreter (bench/lambda_probe.py).

Shared by the cold-start benchmark and the test of the built artifact.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().with_name("lambda_probe.py")
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


def probe_for(is_authorizer: bool, routes: set[tuple[str, str]]) -> Probe:
    """The probe of a function serving `routes` (method, path), or of the authorizer."""
    for probe in PROBES:
        if probe.authorizer != is_authorizer:
            continue
        if is_authorizer or {(probe.method, probe.path), ("ANY", probe.path)} & routes:
            return probe
    raise LookupError(f"no probe in bench/probes.py PROBES for a function serving {routes}")


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


def _probe(
    path: Iterable[Path],
    handler: str,
    event: dict[str, Any],
    *,
    tracer: bool = False,
    extra_env: dict[str, str] | None = None,
    flags: tuple[str, ...] = (),
    wrapper: tuple[str, ...] = (),
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Run bench/lambda_probe.py once (under `wrapper`, if any): its report and standard error."""
    config = {
        "path": [str(p) for p in path],
        "handler": handler,
        "event": event,
        "tracer": tracer,
        **(options or {}),
    }
    completed = subprocess.run(
        [*wrapper, sys.executable, *flags, "-S", "-I", "-B", str(PROBE)],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **LAMBDA_ENV, **(extra_env or {})},
        cwd="/",
        check=False,
        timeout=900 if wrapper else 120,
    )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("LAMBDA-PROBE "):
            report: dict[str, Any] = json.loads(line.removeprefix("LAMBDA-PROBE "))
            return report, completed.stderr
    raise RuntimeError(
        f"{handler} from {config['path']} did not answer (exit {completed.returncode}):\n"
        + (completed.stdout + completed.stderr)[-4000:]
    )


def invoke_cold(
    path: Iterable[Path],
    handler: str,
    event: dict[str, Any],
    *,
    tracer: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One cold start in a fresh interpreter with only `path` (and the stdlib) importable."""
    report, _ = _probe(path, handler, event, tracer=tracer, extra_env=extra_env)
    return report


def import_profile(
    path: Iterable[Path], handler: str, event: dict[str, Any], top: int = 12
) -> list[tuple[str, float]]:
    """The same cold start under `-X importtime`: milliseconds of import by top-level package
    (self times summed), the `top` most costly first."""
    _, stderr = _probe(path, handler, event, flags=("-X", "importtime"))
    by_package: Counter[str] = Counter()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        by_package[name.split(".")[0]] += int(self_us)
    return [(package, self_us / 1000) for package, self_us in by_package.most_common(top)]


# Counts instructions only (no cache simulation: several times faster than callgrind). valgrind
# 3.19's cachegrind prints the total on standard error as "==PID== I   refs:      1,562,525,798".
CACHEGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")
_I_REFS = re.compile(r"^==\d+== I\s+refs:\s+([\d,]+)$", re.MULTILINE)


def _instructions(stderr: str) -> int:
    found = _I_REFS.findall(stderr)
    if len(found) != 1:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{stderr[-2000:]}")
    return int(found[0].replace(",", ""))


def count_instructions(
    path: Iterable[Path],
    handler: str,
    event: dict[str, Any],
    extra_env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """The user-space instructions of one cold start's import plus first call, and the answer.

    Two fresh processes under valgrind: the probe as `invoke_cold` runs it, and the same probe
    stopped just before the import; the difference is the span (the interpreter's own start-up
    and the probe's set-up cancel). The same build and event give the same count to within
    ~0.5 % whatever else the machine runs (hash randomisation is the rest), where a CPU time
    moves by +-25 % on this shared host. It leaves out what instructions do not show: cache
    misses, page faults and the kernel's side of reading the modules' files.
    """
    full, stderr = _probe(
        path, handler, event, extra_env=extra_env, wrapper=CACHEGRIND, options={"brief": True}
    )
    _, before = _probe(
        path,
        handler,
        event,
        extra_env=extra_env,
        wrapper=CACHEGRIND,
        options={"brief": True, "stop": True},
    )
    return _instructions(stderr) - _instructions(before), full


def count_warm_instructions(
    path: Iterable[Path],
    handler: str,
    events: list[dict[str, Any]],
    n: int,
    extra_env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """The user-space instructions of one process that imports the handler and invokes it with
    `events[:n]` in turn, and its report: what each invocation answered (`answers`: its
    `statusCode`, or an authorizer's `isAuthorized`) and the last `answer`.

    Two such counts with the same `events` and another `n` differ by those invocations alone:
    the interpreter's start, the import, reading the events and the first (cold) invocation are
    in both. bench/warm.py takes 1 and 1 + N.
    """
    report, stderr = _probe(
        path, handler, {}, extra_env=extra_env, wrapper=CACHEGRIND,
        options={"events": events, "n": n},
    )  # fmt: skip
    return _instructions(stderr), report


def invoke_warm(
    path: Iterable[Path],
    handler: str,
    events: list[dict[str, Any]],
    n: int,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The same process as `count_warm_instructions`' at full speed (no valgrind): its report."""
    report, _ = _probe(path, handler, {}, extra_env=extra_env, options={"events": events, "n": n})
    return report
