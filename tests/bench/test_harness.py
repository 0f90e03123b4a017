"""The bench's servers (`bench.harness.running`: the edges, uvicorn beside them, the stand-in
backend) end with the bench, however it was stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils.tied import ends_within, start_time

ROOT = Path(__file__).resolve().parents[2]

# A bench run, as far as its servers are concerned: one started through `running`, as every
# scenario starts its edges and backends.
_BENCH = """
import time
from bench.harness import VENV_BIN, running
from lucid_edge.local import free_port
port = free_port()
args = [str(VENV_BIN / "uvicorn"), "bench.backend:app", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning"]
with running("backend", args, {}, port) as server:
    print(server.process.pid, flush=True)
    time.sleep(300)
"""


def test_a_server_the_bench_started_ends_with_the_bench_killed() -> None:
    # GIVEN a bench that started a server and waited until it answered GET /health
    with subprocess.Popen(
        [sys.executable, "-c", _BENCH],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as bench:
        assert bench.stdout is not None
        line = bench.stdout.readline()
        if not line:
            bench.kill()
            pytest.fail(f"the server did not start: {bench.communicate()[1][-3000:]}")
        server = int(line)
        started = start_time(server)
        try:
            # WHEN the bench is killed (SIGKILL; SIGTERM, as `kill` or `timeout` send it, ends
            # Python as abruptly: the `finally` that signals the server's group never runs)
            bench.kill()
            bench.communicate()
            # THEN the server ends too, instead of running on adopted by init
            assert ends_within(server, 10)
        finally:
            if start_time(server) == started:  # what a failure left behind
                os.killpg(server, signal.SIGKILL)
