"""`make bench` (python -m bench) on a machine without wrk: the scenarios that load the gateway
with it stop the bench before it starts, saying why, instead of failing half way or measuring
nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def _bench_without_wrk(tmp_path: Path, *scenarios: str) -> subprocess.CompletedProcess[str]:
    # PATH holds only an empty directory: no wrk (nor anything else) is found on it. The
    # interpreter is named by its path, as make runs it ($(BIN)/python).
    empty = tmp_path / "bin"
    empty.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "bench", *scenarios],
        cwd=ROOT,
        env={"PATH": str(empty), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("scenarios", "named"),
    [
        ((), "foundation, routes, scale, isolation, auth, ratelimit, sessions, proxy"),
        (("routes",), "routes"),
        (("coldstart", "routes", "requests"), "routes"),
    ],
)
def test_a_bench_that_loads_with_wrk_stops_when_wrk_is_missing(
    tmp_path: Path, scenarios: tuple[str, ...], named: str
) -> None:
    written_before = set(RESULTS.glob("*.json")) if RESULTS.exists() else set()
    # GIVEN no wrk on PATH
    # WHEN the bench runs scenarios that load the gateway with wrk (all of them by default)
    completed = _bench_without_wrk(tmp_path, *scenarios)
    # THEN it exits non-zero at once, naming wrk, those scenarios and what runs without it
    assert completed.returncode == 1, completed.stderr
    assert completed.stderr.startswith(f"wrk is not installed (not found on PATH): {named} load")
    assert "run only coldstart or requests" in completed.stderr
    # AND nothing was run nor reported: no scenario started, no results file written
    assert "==" not in completed.stdout
    assert "written to" not in completed.stdout
    after = set(RESULTS.glob("*.json")) if RESULTS.exists() else set()
    assert after == written_before


def test_an_unknown_scenario_is_still_named_first(tmp_path: Path) -> None:
    # GIVEN no wrk on PATH WHEN a scenario name is misspelt
    completed = _bench_without_wrk(tmp_path, "rotues")
    # THEN the bench says so (exit 2), not that wrk is missing
    assert completed.returncode == 2
    assert completed.stdout.startswith("unknown scenarios: rotues; known: foundation")
