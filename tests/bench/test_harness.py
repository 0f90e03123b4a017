"""The bench's servers (`bench.harness.running`: the edges, uvicorn beside them, the stand-in
backend) end with the bench, however it was stopped."""

from __future__ import annotations

from tests.utils.processes import outlives_killed_parent

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
    # WHEN the bench is killed (SIGKILL; SIGTERM, as `kill` or `timeout` send it, ends Python as
    # abruptly: the `finally` that signals the server's group never runs)
    outlived, _ = outlives_killed_parent(_BENCH)
    # THEN the server ends too, instead of running on adopted by init
    assert not outlived
