"""The benchmark scenarios. Each takes the shared environment and returns its figures."""

from __future__ import annotations

from collections.abc import Callable

from bench import scenarios_features, scenarios_speed
from bench.coldstart import measure as measure_cold_starts
from bench.harness import REPEATS, LoadResult, direct_server, edge_server, median_result, wrk
from bench.warm import measure as measure_warm_requests

# The stage throttle would cap the load generator, not the gateway: raise it for throughput runs.
NO_THROTTLE = ("ThrottlingBurstLimit=1000000", "ThrottlingRateLimit=1000000")


def _line(label: str, result: LoadResult) -> str:
    return (
        f"{label:34s} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f}  p95 {result.p95_ms:6.2f}"
        f"  p99 {result.p99_ms:6.2f} ms  errors {result.errors}  non-2xx {result.non_2xx}"
    )


def foundation(env: dict[str, str]) -> dict[str, object]:
    """The edge against the same FastAPI app served directly by uvicorn, same worker count."""
    figures: dict[str, object] = {}
    with edge_server(env, NO_THROTTLE) as edge, direct_server("meta", env) as direct:
        for path in ("/health", "/meta/info"):
            for connections in (64, 512):
                runs: dict[str, list[LoadResult]] = {"edge": [], "direct": []}
                for _ in range(REPEATS):
                    for server in (edge, direct):
                        runs[server.name].append(wrk(server.url + path, connections))
                edge_result = median_result(runs["edge"])
                direct_result = median_result(runs["direct"])
                ratio = edge_result.rps / direct_result.rps
                print(_line(f"edge   GET {path} c={connections}", edge_result))
                print(_line(f"direct GET {path} c={connections}", direct_result))
                print(f"{'':34s} edge/direct throughput ratio {ratio:.2f}", flush=True)
                figures[f"GET {path} c={connections}"] = {
                    "edge": edge_result.__dict__,
                    "direct": direct_result.__dict__,
                    "ratio": ratio,
                }
    return figures


def coldstart(env: dict[str, str]) -> dict[str, object]:
    """Each built function's cold start against a hello-world function, median of 5 fresh
    processes; the layer's size; what a Powertools Tracer would add (bench/coldstart.py)."""
    return measure_cold_starts(env)


def requests(env: dict[str, str]) -> dict[str, object]:
    """Instructions per warm request of the built functions, each against a hello-world
    function's GET /health, median of counts under valgrind (bench/warm.py)."""
    return measure_warm_requests(env)


ALL: dict[str, Callable[[dict[str, str]], dict[str, object]]] = {
    "foundation": foundation,
    "routes": scenarios_speed.routes,
    "scale": scenarios_speed.scale,
    "isolation": scenarios_speed.isolation,
    "auth": scenarios_features.auth,
    "ratelimit": scenarios_features.ratelimit,
    "sessions": scenarios_features.sessions,
    "proxy": scenarios_features.proxy,
    "coldstart": coldstart,
    "requests": requests,
}

# The scenarios that count instructions under valgrind and load nothing: every other one loads
# the gateway with wrk (bench.harness `wrk`), and the bench stops before it starts without it.
WITHOUT_WRK = frozenset({"coldstart", "requests"})
