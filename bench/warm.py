"""Instructions per warm request of the built functions (`make bench requests`).

wrk's throughput ratios on this shared 2-core host move by +-0.1x from one day to the next, too
much to judge a change of a few per cent on the signed-in path by. This counts what one warm
request costs the function itself, under valgrind as the cold-start counts are
(bench/probes.py `count_warm_instructions`): the built function (`sam build`, a read-only copy of
its task root and of the layer, nothing else importable, as bench/coldstart.py starts it) is
invoked once in one fresh process and 1 + N times in another (`BENCH_WARM_REQUESTS`, N=200 by
default), both with the same events; the difference over N is one warm invocation's user-space
instructions. Redis (the bench's redis-server), the in-memory MongoDB (another process) and the
proxy's backend run outside valgrind, so their work is not in the figure; the function's side of
each round trip (the client's encoding, decoding and system calls) is.

Each figure is the median of `BENCH_INSTRUCTION_REPEATS` such pairs (as coldstart's), one count
per core at a time, and is printed as a ratio to a hello-world FastAPI + Mangum function's GET
/health (bench/lambda/hello). Every invocation's answer is checked, not only the last: a count of
401s or 429s would measure the refusal.

What it leaves out: the edge (API Gateway in AWS), the stores' servers, the kernel's side of the
system calls, cache misses. And under valgrind a request takes ~50x longer, so whatever a function
does by the clock happens more often per request than it would at full speed: the rate limiter's
leases last 1 s (lucid.ratelimit.lease), the proxy's breaker state is re-read every 500 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.artifact import ROOT, make_build, make_writable, readonly_copy, sam_build
from bench.coldstart import EXTRA_BUILDS, HELLO, HELLO_PROBE, INSTRUCTION_REPEATS
from bench.coldstart_real import real_event, signed_in, stores
from bench.harness import VENV_BIN, running
from bench.probes import (
    LAMBDA_ENV,
    Probe,
    count_warm_instructions,
    event_for,
    invoke_warm,
    status_of,
)
from bench.scenarios_speed import LIMITS_LIFTED
from lucid.auth.revocation import RevocationList
from lucid.config import Settings
from lucid.store.redis_client import build_redis
from lucid_edge.local import free_port

WARM_REQUESTS = int(os.environ.get("BENCH_WARM_REQUESTS", "200"))

Events = Callable[[int], list[dict[str, Any]]]
# Under valgrind the function runs ~50 times slower, on a machine that other work may load: the
# stores' timeouts at their largest, as lucid.config says to raise them on an overloaded machine
# (a trial run at a load average of 9 got a cold POST /sessions 503 "the database store is
# unavailable" at MONGODB_TIMEOUT_MS=2000). Timeouts change no instruction of a request that
# does not time out.
SLOWED_DOWN = {
    "MONGODB_TIMEOUT_MS": "30000",
    "REDIS_TIMEOUT_MS": "1000",
    "REDIS_CONNECT_TIMEOUT_MS": "5000",
    "PROXY_CONNECT_TIMEOUT_SECONDS": "10",
    "PROXY_READ_TIMEOUT_SECONDS": "28",
}


@dataclass(frozen=True)
class WarmCase:
    """One function, one route, and the answer each of its invocations must get."""

    name: str
    path: tuple[Path, ...]
    handler: str
    status: int  # what the client gets: an authorizer's isAuthorized is 200 or 403
    # `events(size)`: `size` events, the i-th for the i-th invocation, from a fresh state of the
    # stores if the route changes them (a PATCH's If-Match follows the session's version).
    events: Events
    env: tuple[tuple[str, str], ...] = ()
    # In the last answer's body or headers (a 200 can still say "not signed in", a limiter
    # that cannot reach Redis lets requests through without its headers).
    expect: tuple[str, ...] = ()
    authorizer: bool = False

    def count(self, n: int, size: int) -> int:
        """The instructions of one process invoking the handler `n` times (of `size` events);
        refuses any invocation's wrong answer."""
        count, report = count_warm_instructions(
            self.path, self.handler, self.events(size), n, dict(self.env)
        )
        self._check(report, n)
        return count

    def check(self, n: int) -> None:
        """The same `n` invocations at full speed, without valgrind: each must get its answer."""
        self._check(invoke_warm(self.path, self.handler, self.events(n), n, dict(self.env)), n)

    def _check(self, report: dict[str, Any], n: int) -> None:
        answers = report["answers"]
        probe = Probe("", "", self.status, self.authorizer)
        field = "isAuthorized" if self.authorizer else "statusCode"
        for index, answer in enumerate(answers, 1):
            if status_of({field: answer}, probe) != self.status:
                raise RuntimeError(
                    f"{self.name}: invocation {index} of {n} answered {answer}, not"
                    f" {self.status}; the last answer: {report['answer']}"
                )
        if len(answers) != n:
            raise RuntimeError(f"{self.name}: {len(answers)} answers to {n} invocations")
        last = report["answer"]
        seen = str(last.get("body", "")) + json.dumps(last.get("headers", {}))
        if missing := [text for text in self.expect if text not in seen]:
            raise RuntimeError(f"{self.name}: {missing} not in the last answer {last}")

    def per_request(self, requests: int = WARM_REQUESTS) -> float:
        """The instructions of one warm invocation: (count of 1 + N) - (count of 1), over N."""
        many = self.count(1 + requests, 1 + requests)
        one = self.count(1, 1 + requests)
        return (many - one) / requests


def measure_cases(
    cases: Sequence[WarmCase], repeats: int, requests: int, *, progress: bool = False
) -> dict[str, list[float]]:
    """`repeats` figures per case, one count per core at a time: a count does not depend on what
    else runs, so they need not take turns (bench/coldstart.py `_instruction_counts`)."""
    jobs = [case for _ in range(repeats) for case in cases]
    found: dict[str, list[float]] = defaultdict(list)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        running = {pool.submit(case.per_request, requests): case for case in jobs}
        try:
            for done in as_completed(running):
                case = running[done]
                found[case.name].append(done.result())
                if progress:
                    print(f"  {case.name}: {found[case.name][-1] / 1e6:.3f} M", flush=True)
        except BaseException:
            for future in running:  # a wrong answer ends the run: start no other count
                future.cancel()
            raise
    return dict(found)


def _always(event: dict[str, Any]) -> Events:
    return lambda size: [event] * size


def _fresh(event: Callable[[str, dict[str, Any]], dict[str, Any]], user: tuple[str, str]) -> Events:
    """The same event for each invocation of a count, made with a token of `user` (id, address)
    and its authorizer context issued as the count starts: a run outlasts an access token's 15
    minutes (a first run's authorizer was denied 17 minutes in)."""

    def events(size: int) -> list[dict[str, Any]]:
        return [event(*signed_in(*user))] * size

    return events


def _protected(
    method: str, route: str, path: str, context: dict[str, Any], body: Any = None
) -> dict[str, Any]:
    """An HTTP API event of a protected route, as the authorizer's context reaches it."""
    event = real_event(Probe(method, "/users/me", 200), "", context)  # the context, not the path
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if "{id}" in route:
        event["pathParameters"] = {"id": path.rsplit("/", 1)[1]}
    if body is not None:
        event["body"] = json.dumps(body)
        length = str(len(event["body"]))
        event["headers"] |= {"content-type": "application/json", "content-length": length}
    return event


class _Sessions:
    """Sessions of the bench's user, written straight into the in-memory MongoDB."""

    def __init__(self, mongo_uri: str, owner_id: str) -> None:
        self._client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
        self._owner = owner_id

    def new(self) -> str:
        """A pending session at version 1, as POST /sessions stores it; its id."""
        now = datetime.now(UTC)
        session_id = os.urandom(16).hex()
        self._client["lucid"]["sessions"].insert_one(
            {"_id": session_id, "owner_id": self._owner, "name": "bench", "node_id": None,
             "status": "pending", "metadata": {}, "created_at": now, "updated_at": now,
             "started_at": None, "ended_at": None, "version": 1}
        )  # fmt: skip
        return session_id

    def close(self) -> None:
        """Close the client."""
        self._client.close()


def _patches(sessions: _Sessions, user: tuple[str, str]) -> Events:
    """PATCH /sessions/{id} events that each succeed: a session of its own for each count (version
    1), and the i-th event renames it with If-Match of the version the (i-1)-th left (a new name
    each time: an unchanged name changes nothing and keeps the version)."""

    def events(size: int) -> list[dict[str, Any]]:
        session_id = sessions.new()
        _, context = signed_in(*user)
        made = []
        for index in range(size):
            event = _protected(
                "PATCH", "/sessions/{id}", f"/sessions/{session_id}", context,
                {"name": f"bench {index}"},
            )  # fmt: skip
            event["headers"]["if-match"] = f'"{index + 1}"'
            made.append(event)
        return made

    return events


class _NothingRevoked:
    """The record of revoked sign-ins in the bench's MongoDB: empty."""

    def is_revoked(self, sid: str) -> bool:
        return False

    def revoked_since(self, since: datetime) -> dict[str, datetime]:
        return {}


def _revocations_in_sync(redis_uri: str) -> None:
    """Load Redis's copy of the revoked sign-ins, marked in sync for the next day.

    In service the copy is reloaded from MongoDB once per SYNC_SECONDS (30 s) by one caller of
    all the instances (lucid.auth.revocation): not a warm request's cost. Under valgrind a count
    lasts minutes: left to itself, the copy would be due again during some counts and not others
    (one reload imports pymongo into the authorizer, ~0.2 billion instructions), and the first
    count would load it. The copy is loaded here by the layer's own code, its clock a day ahead.
    """
    settings = Settings(
        STAGE=LAMBDA_ENV["STAGE"], REDIS_URI=redis_uri, JWT_SECRET_KEY=LAMBDA_ENV["JWT_SECRET_KEY"]
    )
    client = build_redis(settings)
    try:
        revocations = RevocationList(
            client,
            _NothingRevoked,
            token_lifetime_seconds=3600,
            clock=lambda: time.time() + 86400,
            stage=settings.STAGE,
        )
        if revocations.is_revoked("bench"):
            raise RuntimeError("the copy of revoked sign-ins was not loaded")
    finally:
        client.close()


@contextmanager
def warm_cases(redis_uri: str, scratch: Path) -> Iterator[list[WarmCase]]:
    """The cases of `make bench requests` on the built artifact, with the stores and a backend
    running until the block ends."""
    artifact = sam_build()
    hello = make_build(ROOT / "bench" / "lambda" / "hello", HELLO, EXTRA_BUILDS)
    layer = readonly_copy(artifact.layer, scratch / "layer" / "python")
    roots = {f.name: readonly_copy(f.task_root, scratch / f.name) for f in artifact.functions}
    built = {f.name: ((roots[f.name], layer), f.handler) for f in artifact.functions}
    backend_port = free_port()
    backend_args = [
        str(VENV_BIN / "uvicorn"), "bench.backend:app", "--host", "127.0.0.1",
        "--port", str(backend_port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with ExitStack() as stack:
        env, context, _ = stack.enter_context(stores(redis_uri))
        _revocations_in_sync(redis_uri)
        stack.enter_context(running("backend", backend_args, {}, backend_port))
        sessions = _Sessions(env["MONGODB_URI"], context["user_id"])
        stack.callback(sessions.close)
        deployed = {
            **env,
            **LIMITS_LIFTED,
            **SLOWED_DOWN,
            "BLOCKCHAIN_SERVICE_URL": f"http://127.0.0.1:{backend_port}",
        }
        on = tuple(deployed.items())
        off = tuple({**deployed, "RATE_LIMIT_ENABLED": "false"}.items())
        user = (context["user_id"], context["address"])
        session_id = sessions.new()

        def case(
            name: str,
            function: str,
            status: int,
            events: Events,
            *expect: str,
            limited: bool = True,
            **kw: Any,
        ) -> WarmCase:
            """A case with the limiter on, as deployed: on a limited route its headers must say
            it counted (a limiter that cannot reach Redis lets the request through without)."""
            path, handler = built[function]
            expect = ("x-ratelimit-remaining", *expect) if limited else expect
            return WarmCase(name, path, handler, status, events, env=on, expect=expect, **kw)

        def get(path: str) -> Events:
            return _always(event_for(Probe("GET", path, 200)))

        def protected(method: str, route: str, path: str, body: Any = None) -> Events:
            return _fresh(lambda _, context: _protected(method, route, path, context, body), user)

        def bearer(token: str, _: dict[str, Any]) -> dict[str, Any]:
            event = event_for(Probe("GET", "/auth/status", 200))
            event["headers"]["authorization"] = f"Bearer {token}"
            return event

        me = protected("GET", "/users/me", "/users/me")
        authorizer = Probe("GET", "/users/me", 200, authorizer=True)
        hello_root = readonly_copy(hello, scratch / HELLO)
        yield [
            WarmCase(
                "hello world GET /health",
                (hello_root,),
                "app.handler",
                HELLO_PROBE.status,
                _always(event_for(HELLO_PROBE)),
            ),
            # GET /health and the authorizer are not rate limited.
            case("meta GET /health", "MetaFunction", 200, get("/health"), limited=False),
            case(
                "authorizer, valid token",
                "AuthorizerFunction",
                200,
                _fresh(lambda token, context: real_event(authorizer, token, context), user),
                authorizer=True,
                limited=False,
            ),
            case(
                "auth GET /auth/status signed in",
                "AuthFunction",
                200,
                _fresh(bearer, user),
                '"authenticated":true',
            ),
            case("users GET /users/me", "UsersFunction", 200, me),
            replace(
                case("users GET /users/me, limiter off", "UsersFunction", 200, me),
                env=off,
                expect=(),
            ),
            case(
                "users PATCH /users/me",
                "UsersFunction",
                200,
                protected("PATCH", "/users/me", "/users/me", {"display_name": "Ada"}),
                '"display_name":"Ada"',
            ),
            case(
                "sessions GET /sessions/{id}",
                "SessionsFunction",
                200,
                protected("GET", "/sessions/{id}", f"/sessions/{session_id}"),
                session_id,
            ),
            case(
                "sessions POST /sessions",
                "SessionsFunction",
                201,
                protected("POST", "/sessions", "/sessions", {"name": "b"}),
            ),
            case(
                "sessions PATCH /sessions/{id} If-Match",
                "SessionsFunction",
                200,
                _patches(sessions, user),
                '"version":',
            ),
            case(
                "proxy GET /chain/info",
                "ProxyFunction",
                200,
                get("/chain/info"),
                "lucid-testnet",
            ),
        ]


def measure(env: dict[str, str]) -> dict[str, object]:
    """The table of `make bench requests`: instructions per warm request, x hello world's."""
    if not INSTRUCTION_REPEATS:
        print("BENCH_INSTRUCTION_REPEATS=0: no instruction counts")
        return {}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            with warm_cases(env["REDIS_URI"], Path(scratch)) as cases:
                print(
                    f"instructions per warm request (valgrind), built artifact: 1 vs"
                    f" 1 + {WARM_REQUESTS} invocations, median of {INSTRUCTION_REPEATS}:"
                )
                figures = measure_cases(cases, INSTRUCTION_REPEATS, WARM_REQUESTS, progress=True)
        finally:
            make_writable(Path(scratch))
    hello = statistics.median(figures[cases[0].name])
    report: dict[str, object] = {"requests": WARM_REQUESTS, "repeats": INSTRUCTION_REPEATS}
    print(f"{'case':36s} {'instructions':>12s} {'x hello':>8s} {'spread':>7s}")
    for case in cases:
        own = figures[case.name]
        median = statistics.median(own)
        spread = (max(own) - min(own)) / median
        print(f"{case.name:36s} {median / 1e6:10.3f} M {median / hello:7.2f}x {spread:7.2%}")
        report[case.name] = {"instructions": median, "x_hello": median / hello, "all": own}
    print(
        "(user-space instructions of the function's process per warm invocation, every"
        " invocation's answer checked; not counted: the stores' servers, the backend, the edge,"
        " the kernel's side of system calls, cache misses; spread: (max - min) / median)"
    )
    return report
