"""Conformance, fuzzed: schemathesis against `lucid serve` with the document the edge serves
(/meta/openapi.json), over every operation, as an anonymous caller, a signed-in user and an
admin, with real backends behind the proxy and the rate limiter on (with quotas no run reaches).

Each response is checked for: no 5xx (not_a_server_error; a function's 503 for a store that
timed out under the run's load is counted apart and bounded, see fuzz_hooks), a documented status
(status_code_conformance), a documented content type and body (content_type_conformance,
response_schema_conformance) and the documented headers (response_headers_conformance).
A failure names the operation and the request as a curl command.

Size: LUCID_FUZZ_EXAMPLES test cases at most per operation and phase (examples, coverage,
fuzzing), bounded in `make test`; `make fuzz` runs the full one. Each identity's JSON report
and a summary of the counts and times go to test-artifacts/fuzz/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.subprocess_edge import ROOT, SubprocessEdge, subprocess_edge
from tests.shared.proxy.proxy_backends import running_backend
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("LUCID_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("LUCID_FUZZ_SEED")
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
ARTIFACTS = ROOT / "test-artifacts" / "fuzz"
ADMIN = Wallet()
UNREACHED = str(10**9)  # a quota the run never spends: the limiter runs, and never refuses


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    """The edge with the three backend clusters answering and the rate limiter counting."""
    with ExitStack() as stack:
        backends = {
            name: stack.enter_context(running_backend()).url
            for name in ("BLOCKCHAIN_SERVICE_URL", "SESSION_SERVICE_URL", "NODE_SERVICE_URL")
        }
        limits = {
            name: UNREACHED
            for name in (
                "RATE_LIMIT_PUBLIC",
                "RATE_LIMIT_AUTHENTICATED",
                "RATE_LIMIT_ADMIN",
                "RATE_LIMIT_SIGNIN_PER_IP",
                "RATE_LIMIT_SIGNIN_PER_ADDRESS",
            )
        }
        env = {**backends, **limits, "RATE_LIMIT_ENABLED": "true", "ADMIN_ADDRESSES": ADMIN.address}
        yield stack.enter_context(subprocess_edge(env))


def _run(
    edge: SubprocessEdge, identity: str, wallet: Wallet | None
) -> tuple[dict[str, Any], str, float]:
    reports = ARTIFACTS / identity
    reports.mkdir(parents=True, exist_ok=True)
    for old in [*reports.glob("*.json"), *reports.glob("*.jsonl")]:
        old.unlink()
    command = [
        str(SCHEMATHESIS), "run", edge.url + "/meta/openapi.json",
        "--url", edge.url,
        "--checks", CHECKS,
        "--max-examples", str(EXAMPLES),
        "--phases", "examples,coverage,fuzzing",
        # One worker: with two threads, hypothesis's ast.parse trips CPython 3.11.7's
        # "AST constructor recursion depth mismatch" (gh-106905, fixed in 3.11.8).
        "--workers", "1",
        "--request-timeout", "10",
        "--report", "json", "--report-dir", str(reports),
    ]  # fmt: skip
    if SEED:
        command += ["--seed", SEED]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
        "LUCID_FUZZ_DEGRADED": str(reports / "degraded.jsonl"),
    }
    env.pop("LUCID_FUZZ_KEY", None)
    if wallet is not None:
        env.update(LUCID_FUZZ_EDGE=edge.url, LUCID_FUZZ_KEY=wallet.private_key)
    started = time.monotonic()
    # In the reports' folder: schemathesis keeps its cache (.schemathesis/) where it runs.
    done = subprocess.run(
        command, env=env, cwd=reports, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    found = sorted(reports.glob("*.json"))
    assert found, output[-5000:]
    report = json.loads(found[-1].read_text(encoding="utf-8"))
    assert done.returncode == report["exit_code"], output[-5000:]
    return report, output, elapsed


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


@pytest.mark.parametrize("identity", ["anonymous", "user", "admin"])
def test_every_operation_answers_as_documented(edge: SubprocessEdge, identity: str) -> None:
    wallet = {"anonymous": None, "user": Wallet(), "admin": ADMIN}[identity]
    # WHEN schemathesis sends every operation its generated cases as this caller
    report, output, elapsed = _run(edge, identity, wallet)
    summary = {
        "identity": identity,
        "examples_per_operation": EXAMPLES,
        "requests": report["test_cases"]["generated"],
        "operations": report["operations"]["tested"],
        "seconds": round(elapsed, 1),
        "failures": len(report["failures"]) + len(report["errors"]),
        "degraded_503": _lines(ARTIFACTS / identity / "degraded.jsonl"),
        "seed": report["seed"],
    }
    with (ARTIFACTS / "summary.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(summary) + "\n")
    print(f"\nfuzz {identity}: {json.dumps(summary)}")
    # THEN every operation was tested and no answer broke the document or was a server error
    assert report["operations"]["tested"] == report["operations"]["total"], output[-5000:]
    assert report["failures"] == [], output[-20000:]
    assert report["errors"] == [], output[-20000:]
    assert report["exit_code"] == 0, output[-20000:]
    # A dependency timing out now and then under load is a degradation; more often, an outage.
    degraded = (
        (ARTIFACTS / identity / "degraded.jsonl").read_text(encoding="utf-8")
        if summary["degraded_503"]
        else ""
    )
    assert summary["degraded_503"] <= max(5, summary["requests"] // 100), degraded[-5000:]
