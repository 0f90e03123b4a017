"""The signed-in, rate-limited, database-backed path (issue 11's "Measure"), in one run:

    routes     GET /users/me, GET /sessions/{id}, POST /sessions, PATCH /sessions/{id} with
               If-Match, at 64 and 512 connections, beside the edge's own GET /health and the meta
               app's GET /health under plain uvicorn, alternating, medians of REPEATS rounds
    scale      GET /sessions/{id} on an edge holding 100 sessions against one holding 10,000
    isolation  the edge's GET /health while /chain/* requests are stuck on a slow backend

The rate limiter stays on everywhere (its quotas lifted so that it counts but never refuses the
one load generator); `ratelimit` (bench/scenarios_features.py) measures it on vs off.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.clients import Wallet, sign_in
from bench.harness import (
    CACHED_AUTHORIZER,
    REPEATS,
    VENV_BIN,
    LoadResult,
    Server,
    direct_server,
    edge_server,
    measured,
    median_result,
    running,
    warm,
    wrk,
)
from lucid_edge.local import free_port

NO_THROTTLE = ("ThrottlingBurstLimit=1000000", "ThrottlingRateLimit=1000000", *CACHED_AUTHORIZER)
LIMITS_LIFTED = {
    "RATE_LIMIT_PUBLIC": "1000000000",
    "RATE_LIMIT_AUTHENTICATED": "1000000000",
    "RATE_LIMIT_ADMIN": "1000000000",
}
PATCH_SESSIONS = 1000  # more than the requests one wrk thread has in flight at 512 connections
JSON = {"Content-Type": "application/json"}

# Each wrk thread walks its own share of the sessions, sending the ETag it last saw for each
# (If-Match), and learns the new one from the answer: a client doing optimistic concurrency, so
# that every non-2xx is the edge's own refusal, never a 412 the script brought on itself. A
# session is sent again only once its answer came back with its new tag: at 512 connections a
# slow answer (p99 0.7-1.9 s) is still out when the walk comes round to its session again, and
# a second PATCH with the tag that answer replaces is a 412. One whose answer named no session
# or carried no tag (an edge 503, or a function's 503 after a write it may have made) is not
# sent again in that load: its tag may be stale. wrk hands `response` no request, so the
# session is known only from the answer. Each thread counts its answers by status (`refused`),
# written to a file when the load is done (`refused_statuses`): wrk itself counts them as one.
_PATCH_LUA = """
local ids = {IDS}
local tags = {TAGS}
local threads, all = 0, {}
function setup(thread)
  thread:set("tid", threads); threads = threads + 1; table.insert(all, thread)
end
local etags, waiting, position, count = {}, {}, nil, 0
refused = {}
function request()
  if position == nil then position = tid; for i, id in ipairs(ids) do etags[id] = tags[i] end end
  local id
  for _ = 1, #ids / {THREADS} do  -- at most once round this thread's share
    id = ids[position % #ids + 1]
    position = position + {THREADS}
    if not waiting[id] then break end
  end
  waiting[id] = true
  count = count + 1
  wrk.headers["If-Match"] = etags[id]
  return wrk.format("PATCH", "/sessions/" .. id, nil,
    '{"name": "renamed ' .. tid .. '-' .. count .. '"}')
end
function response(status, headers, body)
  if status > 299 then refused[status] = (refused[status] or 0) + 1 end
  local id = body:match('"id":"(%x+)"') or body:match('/sessions/(%x+)')
  local tag = headers["etag"] or headers["ETag"]
  local current = body:match('current_etag":"[^%d]*(%d+)')
  if tag == nil and current then tag = '"' .. current .. '"' end
  if id and tag then etags[id] = tag; waiting[id] = nil end
end
local report = done
function done(summary, latency, requests)
  local file = io.open({STATUSES}, "w")
  for _, thread in ipairs(all) do
    for status, number in pairs(thread:get("refused")) do
      file:write(status .. " " .. number .. "\\n")
    end
  end
  file:close()
  report(summary, latency, requests)
end
"""


def _show(label: str, result: LoadResult, baseline: LoadResult | None = None) -> dict[str, float]:
    """Print one line; with `baseline` (the edge's GET /health), the throughput ratio to it and
    the CPU ratio (its CPU per request over this route's: the throughput ratio if CPU-bound)."""
    ratios = ""
    shown = dict(result.__dict__)
    if baseline is not None:
        shown["ratio_to_edge_health"] = result.rps / baseline.rps
        shown["cpu_ratio_to_edge_health"] = baseline.cpu_us / result.cpu_us if result.cpu_us else 0
        ratios = (
            f"  {shown['ratio_to_edge_health']:4.2f}x edge /health"
            f" (CPU {shown['cpu_ratio_to_edge_health']:4.2f}x)"
        )
    cpu = f"  cpu {result.cpu_us:5.0f} us/req" if result.cpu_us else ""
    print(
        f"{label:32s} {result.rps:6.0f} req/s  p50 {result.p50_ms:7.2f}  p95 {result.p95_ms:7.2f}"
        f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors}  non-2xx {result.non_2xx}"
        f"{cpu}{ratios}",
        flush=True,
    )
    return shown


def _signed_in(server: Server) -> dict[str, str]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        tokens = sign_in(client, Wallet.new())
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _create_sessions(server: Server, headers: dict[str, str], count: int) -> list[str]:
    """`count` sessions of the signed-in user, created over HTTP by 8 clients at once."""

    def create(numbers: range) -> list[str]:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            ids = []
            for number in numbers:
                response = client.post("/sessions", json={"name": f"seed {number}"})
                response.raise_for_status()
                ids.append(str(response.json()["id"]))
            return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        chunks = pool.map(create, [range(i, count, 8) for i in range(8)])
        return [session_id for chunk in chunks for session_id in chunk]


def routes(env: dict[str, str]) -> dict[str, object]:
    """The four signed-in routes at 64 and 512 connections beside both GET /health baselines."""
    figures: dict[str, object] = {}
    with (
        edge_server({**env, **LIMITS_LIFTED}, NO_THROTTLE) as edge,
        direct_server("meta", env) as direct,
    ):
        auth = _signed_in(edge)
        warm(edge.url + "/users/me", auth)
        # 1,000 sessions to start with; every POST round adds what it creates (tens of
        # thousands by the end), which the indexed store answers as fast (see `scale`).
        ids = _create_sessions(edge, auth, PATCH_SESSIONS)
        refused: dict[int, dict[int, int]] = {64: {}, 512: {}}  # PATCH's non-2xx by status
        # Each entry makes one load for a number of connections: what it reads first (PATCH's
        # current ETags, 1,000 GETs over HTTP) happens before `measured` starts counting the
        # server's CPU, so CPU per request is that of the load's requests alone.
        loads: dict[str, tuple[Server, Callable[[int], Callable[[], LoadResult]]]] = {
            "direct GET /health": (
                direct,
                lambda c: functools.partial(wrk, direct.url + "/health", c),
            ),
            "edge GET /health": (edge, lambda c: functools.partial(wrk, edge.url + "/health", c)),
            "GET /users/me": (
                edge,
                lambda c: functools.partial(wrk, edge.url + "/users/me", c, headers=auth),
            ),
            "GET /sessions/{id}": (
                edge,
                lambda c: functools.partial(wrk, f"{edge.url}/sessions/{ids[0]}", c, headers=auth),
            ),
            "POST /sessions": (
                edge,
                lambda c: functools.partial(
                    wrk,
                    edge.url + "/sessions",
                    c,
                    method="POST",
                    headers={**auth, **JSON},
                    body='{"name": "bench session", "node_id": "node-1"}',
                ),
            ),
            "PATCH /sessions/{id} If-Match": (
                edge,
                lambda c: _patch_load(edge.url, c, auth, ids, refused[c]),
            ),
        }
        for connections in (64, 512):
            runs: dict[str, list[LoadResult]] = {name: [] for name in loads}
            for _ in range(REPEATS):
                for name, (server, make_load) in loads.items():
                    runs[name].append(measured(server.process.pid, make_load(connections)))
            results = {name: median_result(r) for name, r in runs.items()}
            edge_health = results["edge GET /health"]
            print(
                f"-- c={connections} (medians of {REPEATS}; CPU: the server's processes per "
                "request; ratios to the edge's GET /health)"
            )
            for name, result in results.items():
                shown = None if "/health" in name else edge_health
                figures[f"{name} c={connections}"] = _show(name, result, shown)
            ratio = edge_health.rps / results["direct GET /health"].rps
            print(f"{'':40s} edge/direct GET /health throughput ratio {ratio:.2f}", flush=True)
            counted = sorted(refused[connections].items())
            statuses = ", ".join(f"{number} x {status}" for status, number in counted) or "none"
            print(f"{'':40s} PATCH non-2xx in its {REPEATS} loads: {statuses}", flush=True)
            figures[f"PATCH non-2xx by status c={connections}"] = refused[connections]
    return figures


def _patch_load(
    url: str, connections: int, headers: dict[str, str], ids: list[str], refused: dict[int, int]
) -> Callable[[], LoadResult]:
    """The PATCH load (its ETags read now, before it is measured); when run, it adds its non-2xx
    answers by status to `refused`."""
    statuses = Path(tempfile.mkdtemp(prefix="lucid-bench-")) / "statuses"
    lua = patch_lua(url, headers, ids, statuses)

    def load() -> LoadResult:
        try:
            result = wrk(url + "/sessions", connections, headers={**headers, **JSON}, lua=lua)
            for status, number in refused_statuses(statuses).items():
                refused[status] = refused.get(status, 0) + number
        finally:
            shutil.rmtree(statuses.parent, ignore_errors=True)
        return result

    return load


def patch_lua(url: str, headers: dict[str, str], ids: list[str], statuses: Path) -> str:
    """The PATCH load's script, starting from each session's current ETag (read over HTTP) at
    `url`; when done, it writes each status other than 2xx it got to `statuses`, with how many
    times (`refused_statuses` reads it)."""

    def current(chunk: list[str]) -> dict[str, str]:
        # One that cannot be read now gets "1": the first PATCH's 412 says the current one.
        tags = dict.fromkeys(chunk, '"1"')
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for session_id in chunk:
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get(f"/sessions/{session_id}")
                    tags[session_id] = response.headers.get("etag", '"1"')
        return tags

    tags: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for found in pool.map(current, [ids[i::8] for i in range(8)]):
            tags.update(found)
    lua = _PATCH_LUA.replace("{IDS}", "{" + ",".join(map(json.dumps, ids)) + "}")
    lua = lua.replace("{TAGS}", "{" + ",".join(json.dumps(tags[i]) for i in ids) + "}")
    return lua.replace("{STATUSES}", json.dumps(str(statuses))).replace("{THREADS}", "2")


def refused_statuses(statuses: Path) -> dict[int, int]:
    """What `patch_lua`'s script wrote: how many answers of each status other than 2xx."""
    counted: dict[int, int] = {}
    for status, number in zip(*[iter(statuses.read_text().split())] * 2, strict=True):
        counted[int(status)] = counted.get(int(status), 0) + int(number)
    return counted


def scale(env: dict[str, str]) -> dict[str, object]:
    """GET /sessions/{id} with 100 sessions stored against 10,000, alternating, 64 connections."""
    figures: dict[str, object] = {}
    with (
        edge_server({**env, **LIMITS_LIFTED}, NO_THROTTLE) as small,
        edge_server({**env, **LIMITS_LIFTED}, NO_THROTTLE) as large,
    ):
        targets = {}
        for name, server, count in (("100", small, 100), ("10000", large, 10_000)):
            auth = _signed_in(server)
            warm(server.url + "/users/me", auth)
            ids = _create_sessions(server, auth, count)
            targets[name] = (server, f"{server.url}/sessions/{ids[len(ids) // 2]}", auth)
        runs: dict[str, list[LoadResult]] = {name: [] for name in targets}
        for _ in range(REPEATS):
            for name, (server, url, auth) in targets.items():
                load = functools.partial(wrk, url, 64, headers=auth)
                runs[name].append(measured(server.process.pid, load))
        results = {name: median_result(r) for name, r in runs.items()}
        for name, result in results.items():
            figures[f"{name} sessions"] = _show(f"GET /sessions/{{id}} c=64, {name} stored", result)
        ratio = results["10000"].rps / results["100"].rps
        print(f"{'':40s} throughput at 10,000 sessions / at 100: {ratio:.2f}")
        figures["ratio"] = ratio
    return figures


def isolation(env: dict[str, str], stuck: int = 16) -> dict[str, object]:
    """The edge's GET /health at 64 connections with and without `stuck` /chain/info requests
    waiting on a backend that answers after 12 s (alternating rounds)."""
    figures: dict[str, object] = {}
    port = free_port()
    backend_args = [
        str(VENV_BIN / "uvicorn"), "bench.backend:slow_app", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proxy_env = {
        **env,
        **LIMITS_LIFTED,
        "BLOCKCHAIN_SERVICE_URL": f"http://127.0.0.1:{port}",
        "PROXY_READ_TIMEOUT_SECONDS": "11",
        "PROXY_RETRIES": "0",
        # Every round's stuck calls time out (504): the breaker must not start answering the
        # next round's at once, or nothing would be stuck.
        "BREAKER_MIN_CALLS": "1000000",
    }
    runs: dict[str, list[LoadResult]] = {"alone": [], "stuck": []}
    with (
        running("backend", backend_args, {"SLOW_BACKEND_SECONDS": "12"}, port),
        edge_server(proxy_env, NO_THROTTLE) as edge,
    ):
        for _ in range(REPEATS):
            runs["alone"].append(wrk(edge.url + "/health", 64))
            waiting = [
                threading.Thread(target=_stuck_call, args=(edge.url + "/chain/info",))
                for _ in range(stuck)
            ]
            for thread in waiting:
                thread.start()
            time.sleep(0.5)  # they have reached the backend
            runs["stuck"].append(wrk(edge.url + "/health", 64))
            for thread in waiting:
                thread.join()
    alone, stuck_result = median_result(runs["alone"]), median_result(runs["stuck"])
    figures["alone"] = _show("edge GET /health c=64", alone)
    figures["stuck"] = _show(f"  while {stuck} GET /chain/info are stuck", stuck_result)
    if stuck_result.rps == 0:
        print(f"{'':40s} no GET /health answered while they were stuck")
    else:
        print(f"{'':40s} p99 {stuck_result.p99_ms:.2f} ms against {alone.p99_ms:.2f} ms alone")
    return figures


def _stuck_call(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # what it answers is not what is measured
        httpx.get(url, timeout=40)
