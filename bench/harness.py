"""Servers and a load generator for the benchmarks.

Every figure is taken with wrk (a real HTTP load generator from Debian) against servers started
here on 127.0.0.1, and every comparison is against a baseline measured in the same run, because
this shared 2-core machine drifts by up to 25 % within an hour. Each scenario runs `REPEATS`
rounds alternating the candidates, and the report quotes medians.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from lucid_edge.local import free_port
from tests.utils.tied import tied

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
DURATION = os.environ.get("BENCH_DURATION", "8s")

_REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run."""

    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    requests: int = 0
    cpu_us: float = 0.0  # the server's CPU per request, when measured (`measured`)


def median_result(results: Sequence[LoadResult]) -> LoadResult:
    """Field-wise median of several runs of the same load."""
    return LoadResult(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p95_ms=statistics.median(r.p95_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=max(r.errors for r in results),
        non_2xx=max(r.non_2xx for r in results),
        requests=int(statistics.median(r.requests for r in results)),
        cpu_us=statistics.median(r.cpu_us for r in results),
    )


def measured(server_pid: int, load: Callable[[], LoadResult]) -> LoadResult:
    """`load()`'s result with the CPU that `server_pid`'s process tree spent per request."""
    before = tree_cpu_seconds(server_pid)
    result = load()
    spent = tree_cpu_seconds(server_pid) - before
    return replace(result, cpu_us=spent / max(result.requests, 1) * 1e6)


def wrk(
    url: str,
    connections: int,
    *,
    duration: str = DURATION,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    threads: int = 2,
    lua: str = "",
) -> LoadResult:
    """Load `url` with wrk and return throughput, latency percentiles and error counts.

    `lua` is added to wrk's script (a `request`/`response` pair that varies each request).
    """
    script = _REPORT_LUA + f"wrk.method = {json.dumps(method)}\n"
    for name, value in (headers or {}).items():
        script += f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n"
    if body is not None:
        script += f"wrk.body = {json.dumps(body)}\n"
    script += lua
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        completed = subprocess.run(
            [
                shutil.which("wrk") or "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration}",
                "--timeout",
                "10s",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(handle.name)
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    seconds = data["duration_us"] / 1e6
    return LoadResult(
        rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        non_2xx=data["status"],
        requests=data["requests"],
    )


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and every process below it.

    What a server spends per request is steadier on this shared machine than what it serves per
    second: other tenants' load takes throughput, not CPU seconds.
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return sum(times.get(member, 0.0) for member in tree)


# Signed-in loads: the authorizer decides once per worker, before the load (`warm`), and its
# decision stays cached for the run. Under full load on this 2-core machine a decision made
# mid-run can miss its 50 ms Redis budget for the denylist, and the denial it then returns is
# cached for the TTL: one worker answering 403 for a minute would measure nothing we change here
# (the `auth` scenario measures the authorizer itself).
CACHED_AUTHORIZER = ("AuthorizerTtlSeconds=3600",)


def warm(url: str, headers: dict[str, str], tries: int = 40) -> None:
    """GET `url` on fresh connections (so every worker serves some) until each answered 2xx."""
    for _ in range(tries):
        response = httpx.get(url, headers={**headers, "Connection": "close"}, timeout=10)
        response.raise_for_status()


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200; fail at once if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server behind {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


@dataclass
class Server:
    """A server process on 127.0.0.1."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running(name: str, args: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    """Run `args` until the block ends; the server must answer GET /health. It ends with
    this process too (tests.utils.tied): a bench stopped by SIGKILL leaves no server running."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            tied(args),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Server(name, port, process)
        try:
            wait_ready(server.url + "/health", process)
            yield server
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def edge_server(
    env: dict[str, str], overrides: Sequence[str] = (), workers: int = 2
) -> Iterator[Server]:
    """The local edge serving infra/template.yaml with `workers` processes: on BENCH_EDGE_PORT
    when it is set and free (so a Prometheus scraping that port watches the run: README,
    "Watch the local edge in Prometheus"), else on any free port."""
    port = _watched_port() or free_port()
    args = [str(VENV_BIN / "lucid"), "serve", "--port", str(port), "--workers", str(workers)]
    if overrides:
        args += ["--parameter-overrides", *overrides]
    with running("edge", args, env, port) as server:
        yield server


def _watched_port() -> int | None:
    wanted = os.environ.get("BENCH_EDGE_PORT")
    if not wanted:
        return None
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as `lucid serve` binds
        try:
            probe.bind(("127.0.0.1", int(wanted)))
        except OSError:  # another edge of this run holds it: this one goes elsewhere
            return None
    return int(wanted)


@contextmanager
def direct_server(function_dir: str, env: dict[str, str], workers: int = 2) -> Iterator[Server]:
    """The same function's FastAPI app served directly by uvicorn (no Lambda, no edge)."""
    port = free_port()
    args = [
        str(VENV_BIN / "uvicorn"),
        "app:app",
        "--app-dir", str(ROOT / "functions" / function_dir),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", str(workers),
        "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    with running("direct", args, env, port) as server:
        yield server
