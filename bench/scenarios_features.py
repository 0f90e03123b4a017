"""Benchmarks of the feature issues: sign-in and the authorizer, the rate limiter's cost,
the sessions routes, and the proxy with its circuit breaker."""

from __future__ import annotations

import functools
import os
import secrets
import time
from contextlib import ExitStack

import httpx

from bench.clients import Wallet, login_latencies, sign_in
from bench.harness import (
    CACHED_AUTHORIZER,
    REPEATS,
    ROOT,
    VENV_BIN,
    LoadResult,
    Server,
    edge_server,
    measured,
    median_result,
    running,
    warm,
    wrk,
)
from lucid.auth.tokens import get_token_service
from lucid.identity import Role
from lucid_edge.loader import load_handler
from lucid_edge.local import free_port

NO_THROTTLE = ("ThrottlingBurstLimit=1000000", "ThrottlingRateLimit=1000000")
# The load generator is one client on one IP: lift the per-caller limits unless measuring them.
LIMITS_LIFTED = {
    "RATE_LIMIT_PUBLIC": "1000000000",
    "RATE_LIMIT_AUTHENTICATED": "1000000000",
    "RATE_LIMIT_ADMIN": "1000000000",
    "RATE_LIMIT_SIGNIN_PER_IP": "1000000000",
    "RATE_LIMIT_SIGNIN_PER_ADDRESS": "1000000000",
}


def _show(label: str, result: LoadResult) -> dict[str, float]:
    print(
        f"{label:44s} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f}"
        f"  p99 {result.p99_ms:7.2f} ms"
        f"  errors {result.errors}  non-2xx {result.non_2xx}",
        flush=True,
    )
    return dict(result.__dict__)


def _bearer(server: Server) -> dict[str, str]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        tokens = sign_in(client, Wallet.new())
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def auth(env: dict[str, str]) -> dict[str, object]:
    """Login cost, and a protected GET with the authorizer decision cached vs made every time."""
    figures: dict[str, object] = {}
    env = {**env, **LIMITS_LIFTED}
    with (
        edge_server(env, NO_THROTTLE) as cached,
        edge_server(env, (*NO_THROTTLE, "AuthorizerTtlSeconds=0")) as uncached,
    ):
        logins = login_latencies(cached.url, 200)
        print(
            f"login (200 sequential sign-ins) POST /auth/login p50 {logins['login_p50_ms']:.2f} ms"
            f"  p99 {logins['login_p99_ms']:.2f} ms; challenge+sign+login p50 "
            f"{logins['sign_in_p50_ms']:.2f} ms"
        )
        figures["login"] = logins
        # A protected route that answers without a database (the id is refused before any
        # query: 404), on one connection: the difference is the authorizer decision alone.
        runs: dict[str, list[LoadResult]] = {"cached": [], "uncached": []}
        headers = {"cached": _bearer(cached), "uncached": _bearer(uncached)}
        for _ in range(REPEATS):
            for name, server in (("cached", cached), ("uncached", uncached)):
                url = server.url + "/sessions/not-an-id"
                runs[name].append(wrk(url, 1, threads=1, headers=headers[name]))
        results = {name: median_result(r) for name, r in runs.items()}
        for name, result in results.items():
            figures[f"protected 404 authorizer {name}"] = _show(
                f"GET /sessions/not-an-id c=1, authorizer {name}", result
            )
        decision = results["uncached"].p50_ms - results["cached"].p50_ms
        print(f"{'':44s} p50 added by an uncached authorizer decision: {decision:.2f} ms")
        figures["uncached_decision_p50_ms"] = decision
    in_process = authorizer_handler_p50_us(env)
    print(f"authorizer handler alone (in-process, valid token): p50 {in_process:.0f} us")
    figures["authorizer_handler_p50_us"] = in_process
    return figures


def authorizer_handler_p50_us(env: dict[str, str], calls: int = 2000) -> float:
    """The authorizer function's own cost per uncached decision: JWT verify + revocation check."""
    os.environ.update(env)  # before the layer builds its settings, once, in this process
    handler = load_handler(ROOT / "functions" / "authorizer", "app.handler").handler
    user_id, session_id = secrets.token_hex(16), secrets.token_hex(16)
    issued = get_token_service().issue(user_id, "T" + "1" * 33, Role.USER, session_id)
    token = issued.token
    event = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/local/GET/users/me",
        "identitySource": [f"Bearer {token}"],
        "routeKey": "GET /users/me",
        "rawPath": "/users/me",
        "headers": {"authorization": f"Bearer {token}"},
        "requestContext": {"http": {"method": "GET", "path": "/users/me"}},
    }
    assert handler(event, None)["isAuthorized"] is True
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        handler(event, None)
        timings.append(time.perf_counter() - started)
    timings.sort()
    return timings[len(timings) // 2] * 1e6


def ratelimit(env: dict[str, str]) -> dict[str, object]:
    """An authenticated GET with the tiered limiter on (never refusing) vs off, same run."""
    figures: dict[str, object] = {}
    limited_env = {**env, **LIMITS_LIFTED, "RATE_LIMIT_ENABLED": "true"}
    unlimited_env = {**env, **LIMITS_LIFTED, "RATE_LIMIT_ENABLED": "false"}
    with (
        edge_server(limited_env, (*NO_THROTTLE, *CACHED_AUTHORIZER)) as limited,
        edge_server(unlimited_env, (*NO_THROTTLE, *CACHED_AUTHORIZER)) as unlimited,
    ):
        headers = {"limited": _bearer(limited), "off": _bearer(unlimited)}
        warm(limited.url + "/users/me", headers["limited"])
        warm(unlimited.url + "/users/me", headers["off"])
        for connections in (64, 512):
            runs: dict[str, list[LoadResult]] = {"limited": [], "off": []}
            # Two more rounds than elsewhere: the difference sought is within the machine's noise.
            for _ in range(REPEATS + 2):
                for name, server in (("limited", limited), ("off", unlimited)):
                    load = functools.partial(
                        wrk, server.url + "/users/me", connections, headers=headers[name]
                    )
                    runs[name].append(measured(server.process.pid, load))
            on, off = median_result(runs["limited"]), median_result(runs["off"])
            figures[f"c={connections} limited"] = _show(
                f"GET /users/me c={connections} limited", on
            )
            figures[f"c={connections} off"] = _show(f"GET /users/me c={connections} limit off", off)
            cost = 1 - on.rps / off.rps
            # CPU per request is steadier than throughput on a machine shared with other work.
            cpu_cost = 1 - off.cpu_us / on.cpu_us
            print(
                f"{'':44s} cost of rate limiting: throughput {cost * 100:.1f} %, CPU per request"
                f" {cpu_cost * 100:.1f} % ({on.cpu_us:.0f} vs {off.cpu_us:.0f} us)"
            )
            figures[f"c={connections} cost"] = cost
            figures[f"c={connections} cpu cost"] = cpu_cost
    return figures


def sessions(env: dict[str, str]) -> dict[str, object]:
    """GET /sessions/{id} over a store of 100 sessions, then POST /sessions, through the edge.

    The local store is mongomock served over the wire by one thread of the edge's parent, with
    hash indexes (`scale` in bench/scenarios_speed.py compares 100 and 10,000 documents); the
    document count is printed beside the figure.
    """
    figures: dict[str, object] = {}
    with edge_server({**env, **LIMITS_LIFTED}, NO_THROTTLE) as edge:
        headers = _bearer(edge)
        with httpx.Client(base_url=edge.url, headers=headers, timeout=10) as client:
            for number in range(100):
                client.post("/sessions", json={"name": f"seed {number}"}).raise_for_status()
            session_id = client.get("/sessions", params={"limit": "1"}).json()["items"][0]["id"]
            seeded = _count_sessions(client)
        get = median_result(
            [wrk(f"{edge.url}/sessions/{session_id}", 64, headers=headers) for _ in range(REPEATS)]
        )
        figures["GET /sessions/{id}"] = _show(f"GET /sessions/{{id}} c=64 ({seeded} docs)", get)
        post = wrk(
            edge.url + "/sessions",
            16,
            duration="2s",
            method="POST",
            headers={**headers, "Content-Type": "application/json"},
            body='{"name": "bench session", "node_id": "node-1"}',
        )
        with httpx.Client(base_url=edge.url, headers=headers, timeout=10) as client:
            total = _count_sessions(client)
        figures["POST /sessions"] = _show(
            f"POST /sessions c=16, 2 s ({seeded}->{total} docs)", post
        )
        figures["documents"] = {"get": seeded, "after_post": total}
    return figures


def _count_sessions(client: httpx.Client) -> int:
    count, cursor = 0, None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = client.get("/sessions", params=params).json()
        count += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return count


def proxy(env: dict[str, str]) -> dict[str, object]:
    """The proxy's added latency over the backend called directly; then the breaker open."""
    figures: dict[str, object] = {}
    backend_port = free_port()
    backend_args = [
        str(VENV_BIN / "uvicorn"), "bench.backend:app", "--host", "127.0.0.1",
        "--port", str(backend_port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proxy_env = {
        **env,
        "RATE_LIMIT_ENABLED": "false",
        "BLOCKCHAIN_SERVICE_URL": f"http://127.0.0.1:{backend_port}",
        "BREAKER_OPEN_SECONDS": "8",
        "BREAKER_WINDOW_SECONDS": "10",
    }
    with ExitStack() as stack:
        backend = stack.enter_context(running("backend", backend_args, {}, backend_port))
        edge = stack.enter_context(edge_server(proxy_env, NO_THROTTLE))
        # One connection: the latency the gateway adds, without queueing behind other requests.
        runs: dict[str, list[LoadResult]] = {"direct": [], "proxied": []}
        for _ in range(REPEATS):
            runs["direct"].append(wrk(backend.url + "/info", 1, threads=1))
            runs["proxied"].append(wrk(edge.url + "/chain/info", 1, threads=1))
        direct, proxied = median_result(runs["direct"]), median_result(runs["proxied"])
        figures["backend direct"] = _show("backend GET /info c=1", direct)
        figures["through edge"] = _show("edge GET /chain/info c=1", proxied)
        loaded = wrk(edge.url + "/chain/info", 16)
        figures["through edge c=16"] = _show("edge GET /chain/info c=16", loaded)
        added = {"p50_ms": proxied.p50_ms - direct.p50_ms, "p99_ms": proxied.p99_ms - direct.p99_ms}
        print(
            f"{'':44s} added by the gateway: p50 {added['p50_ms']:.2f} ms,"
            f" p99 {added['p99_ms']:.2f} ms"
        )
        figures["added"] = added
        stack.pop_all().close()  # stops the edge and the backend (reverse order)
    # Breaker: a fresh edge whose backend is down from the start.
    with edge_server(proxy_env, NO_THROTTLE) as edge, httpx.Client(timeout=10) as client:
        started = time.perf_counter()
        statuses = [client.get(edge.url + "/chain/info").status_code for _ in range(20)]
        opened_after = statuses.index(503) if 503 in statuses else None  # calls before the 1st 503
        print(f"breaker opened after {opened_after} failed calls ({statuses[:12]}...)")
        open_single = wrk(edge.url + "/chain/info", 1, duration="2s", threads=1)
        figures["breaker open c=1"] = _show("edge GET /chain/info c=1, breaker open", open_single)
        open_result = wrk(edge.url + "/chain/info", 64, duration="2s")
        figures["breaker open"] = _show("edge GET /chain/info c=64, breaker open", open_result)
        with running("backend", backend_args, {}, backend_port):
            closes = []
            deadline = time.perf_counter() + 30
            while time.perf_counter() < deadline:
                status = client.get(edge.url + "/chain/info").status_code
                closes.append(status)
                if status == 200:
                    break
                time.sleep(0.25)
            recovered = time.perf_counter() - started
        print(f"breaker closed again: {closes[-1] == 200} ({recovered:.1f} s after the first call)")
        figures["breaker"] = {"opened_after_calls": opened_after, "closed_again": closes[-1] == 200}
    return figures
