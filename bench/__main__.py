"""Run every benchmark scenario and print one report (also written to bench/results/)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench import scenarios
from tests.utils.tied import start_redis

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    """Run the scenarios named on the command line (all by default)."""
    wanted = set(sys.argv[1:]) or set(scenarios.ALL)
    unknown = wanted - set(scenarios.ALL)
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}; known: {', '.join(scenarios.ALL)}")
        return 2
    needs_wrk = [name for name in scenarios.ALL if name in wanted - scenarios.WITHOUT_WRK]
    if needs_wrk and shutil.which("wrk") is None:
        # Stopped here, not by the first load half way through the run (a FileNotFoundError
        # once the servers are up), and never a report that measured nothing.
        print(
            f"wrk is not installed (not found on PATH): {', '.join(needs_wrk)} load the gateway"
            " with it. Install Debian's wrk (`apt-get install wrk`; `make bench` tries to), or"
            f" run only {' or '.join(sorted(scenarios.WITHOUT_WRK))}.",
            file=sys.stderr,
        )
        return 1
    report: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # Tied to this process (tests.utils.tied): a bench stopped by SIGKILL leaves no redis-server.
    with start_redis() as redis_server:
        env = {
            "REDIS_URI": redis_server.uri,
            "JWT_SECRET_KEY": "bench-only-" + "x" * 40,
            "LOG_LEVEL": "WARNING",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "LucidBench",
        }
        for name, scenario in scenarios.ALL.items():
            if name in wanted:
                print(f"\n== {name} ==", flush=True)
                report[name] = scenario(env)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{int(time.time())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
