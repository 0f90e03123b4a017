"""The proxy end to end: `lucid serve` with two workers in front of real backend servers on
127.0.0.1 (issue 6). The backends log every request they receive, so "the backend was never
touched" is an assertion on that log.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from lucid_edge.local import free_port
from tests.e2e.conftest import NAMED_STAGE, ON_A_NAMED_STAGE, on_stage
from tests.e2e.subprocess_edge import SubprocessEdge, sign_in, subprocess_edge
from tests.shared.proxy.proxy_backends import BackendServer, running_backend
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"
FRESH = {"Connection": "close"}  # a new connection per request: any worker may take it
BREAKER = {
    "BREAKER_WINDOW_SECONDS": "10",
    "BREAKER_MIN_CALLS": "4",
    "BREAKER_FAILURE_RATE": "0.5",
    "BREAKER_OPEN_SECONDS": "2",
    "BREAKER_HALF_OPEN_CALLS": "1",
    "PROXY_CONNECT_TIMEOUT_SECONDS": "0.5",
    "PROXY_READ_TIMEOUT_SECONDS": "2",
}
FORGED = {
    "X-Lucid-User-Id": "someone-else",
    "X-Lucid-Role": "admin",
    "X-Forwarded-For": "203.0.113.66",
    "Forwarded": "for=203.0.113.66",
    "X-Real-IP": "203.0.113.66",
}


@pytest.fixture(scope="module")
def chain() -> Iterator[BackendServer]:
    """The blockchain backend (its log is cleared by `edge` before each test)."""
    with running_backend() as server:
        yield server


@pytest.fixture(scope="module")
def session_backend() -> Iterator[BackendServer]:
    """The session-management backend (manifests and trust)."""
    with running_backend() as server:
        yield server


@contextmanager
def _edge(
    chain: BackendServer, session_backend: BackendServer, stage: str
) -> Iterator[SubprocessEdge]:
    env = {
        **BREAKER,
        "BLOCKCHAIN_SERVICE_URL": chain.url,
        "SESSION_SERVICE_URL": session_backend.url,
        "PROXY_READ_TIMEOUT_SECONDS": "20",  # a held backend answers when the test says so
    }
    with subprocess_edge(env, stage=stage) as running:
        yield running


@pytest.fixture(scope="module")
def default_edge(chain: BackendServer, session_backend: BackendServer) -> Iterator[SubprocessEdge]:
    with _edge(chain, session_backend, "$default") as running:
        yield running


@pytest.fixture(scope="module")
def dev_edge(chain: BackendServer, session_backend: BackendServer) -> Iterator[SubprocessEdge]:
    with _edge(chain, session_backend, NAMED_STAGE) as running:
        yield running


@pytest.fixture
def edge(
    request: pytest.FixtureRequest,
    chain: BackendServer,
    session_backend: BackendServer,
    redis_client: redis.Redis,
) -> SubprocessEdge:
    """The edge (on the stage the test asks for), both backends answering 200 JSON, their logs
    empty."""
    running: SubprocessEdge = on_stage(request)
    for backend in (chain, session_backend):
        backend.mode = "ok"
        backend.extra_headers = []
        backend.received.clear()
        backend.connections = 0
    return running


@pytest.fixture
def token(edge: SubprocessEdge) -> str:
    """A signed-in user's access token, obtained over HTTP."""
    with edge.client() as client:
        return sign_in(client, Wallet())


@ON_A_NAMED_STAGE
def test_anonymous_chain_info_passes_the_backend_answer_through(
    edge: SubprocessEdge, chain: BackendServer
) -> None:
    # GIVEN the blockchain backend answers with its own type and headers
    chain.mode = "status"
    chain.body = b'{"height": 7, "network": "tron"}'
    chain.content_type = "application/vnd.lucid.chain+json; charset=utf-8"
    chain.extra_headers = [("Cache-Control", "max-age=5"), ("Keep-Alive", "timeout=5")]
    # WHEN an anonymous caller asks for /chain/info through the edge
    response = httpx.get(edge.base_url + "/chain/info?verbose=1", headers=FORGED)
    # THEN the body, status and content type come through untouched (hop-by-hop ones do not)
    assert response.status_code == 200
    assert response.content == b'{"height": 7, "network": "tron"}'
    assert response.headers["content-type"] == "application/vnd.lucid.chain+json; charset=utf-8"
    assert response.headers["cache-control"] == "max-age=5"
    assert "keep-alive" not in response.headers
    # AND the backend saw an anonymous caller at the real source address
    (received,) = chain.received
    assert received.path == "/chain/info?verbose=1"
    assert received.header("X-Forwarded-For") == ["127.0.0.1"]
    assert received.header("X-Lucid-User-Id") == []
    assert received.header("X-Lucid-Role") == []
    assert received.header("X-Real-IP") == received.header("Forwarded") == []


def test_other_chain_routes_need_a_signed_in_caller(
    edge: SubprocessEdge, chain: BackendServer
) -> None:
    response = httpx.get(edge.base_url + "/chain/blocks/7")
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert chain.connections == 0


@ON_A_NAMED_STAGE
def test_the_backend_gets_the_authorizers_identity_never_the_clients_claims(
    edge: SubprocessEdge, chain: BackendServer, token: str
) -> None:
    bearer = {"Authorization": f"Bearer {token}"}
    user_id = httpx.get(edge.base_url + "/auth/status", headers=bearer).json()["user"]["id"]
    # WHEN a signed-in caller POSTs with forged identity and forwarding headers
    response = httpx.post(
        edge.base_url + "/chain/tx?dry_run=true",
        headers={**bearer, **FORGED, "Content-Type": "application/json"},
        content=b'{"to": "T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb", "amount": 5}',
    )
    # THEN it was proxied once, with method, path, query and body intact
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "path": "/chain/tx?dry_run=true"}
    (received,) = chain.received
    assert received.body == b'{"to": "T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb", "amount": 5}'
    # AND the identity is the authorizer's, the address the socket's, the token not passed on
    assert received.header("X-Lucid-User-Id") == [user_id]
    assert received.header("X-Lucid-Role") == ["user"]
    assert received.header("X-Forwarded-For") == ["127.0.0.1"]
    assert received.header("Authorization") == []
    assert received.header("X-Real-IP") == received.header("Forwarded") == []


@ON_A_NAMED_STAGE
def test_manifests_and_their_collection_root_go_to_the_session_backend(
    edge: SubprocessEdge, chain: BackendServer, session_backend: BackendServer, token: str
) -> None:
    bearer = {"Authorization": f"Bearer {token}"}
    item = httpx.get(edge.base_url + "/manifests/m-1/files", headers=bearer)
    root = httpx.get(edge.base_url + "/manifests?owner=me", headers=bearer)
    assert (item.status_code, root.status_code) == (200, 200)
    # (the stage, when named, is the API's: the backend gets the public path below it)
    assert [r.path for r in session_backend.received] == [
        "/manifests/m-1/files",
        "/manifests?owner=me",
    ]
    assert chain.connections == 0


@pytest.mark.parametrize(
    "target",
    [
        "/chain/%2e%2e/admin",
        "/chain/blocks/..;/..;/admin",
        "/chain/..%2fadmin",
        "/chain/%252e%252e/admin",
        "/chain/%5c%5cevil.example/admin",
        "/chain/blocks/%0d%0aX-Injected:%201",
        "/chain/blocks%0aGET%20/admin",
        "/chain/http:%2f%2fevil.example/admin",
    ],
)
def test_traversal_and_injection_attempts_are_refused_before_any_connection(
    edge: SubprocessEdge, chain: BackendServer, token: str, target: str
) -> None:
    # GIVEN a signed-in caller WHEN the path tries to leave the backend or split the request
    # (sent byte for byte: an HTTP client library would normalise some of these)
    address = urlsplit(edge.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.request("GET", target, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        status, content_type, body = (
            response.status,
            response.getheader("content-type"),
            response.read(),
        )
    finally:
        connection.close()
    # THEN the proxy answers 400 problem+json and the backend never saw a connection
    assert status == 400, body
    assert content_type == PROBLEM_JSON
    assert chain.connections == 0


def test_breaker_opens_shares_its_state_across_workers_and_closes_after_a_probe(
    redis_client: redis.Redis,
) -> None:
    port = free_port()
    env = {**BREAKER, "BLOCKCHAIN_SERVICE_URL": f"http://127.0.0.1:{port}"}
    with subprocess_edge(env) as edge, edge.client() as one_worker:
        # GIVEN a healthy backend that closes its connections after each answer (so that stopping
        # it is like its process ending: nothing is left for a pooled connection to reach)
        with running_backend(port) as backend:
            backend.extra_headers = [("Connection", "close")]
            assert one_worker.get("/chain/info").status_code == 200
        # WHEN the backend stops: 1 success then failures, over BREAKER_MIN_CALLS=4 calls
        statuses: list[int] = []
        while len(statuses) < 10 and (not statuses or statuses[-1] != 503):
            statuses.append(one_worker.get("/chain/info").status_code)
        # THEN the third failure trips it (3 of 4 calls failed, rate 0.5) and the next is 503
        assert statuses == [502, 502, 502, 503]
        with running_backend(port) as revived:
            revived.extra_headers = [("Connection", "close")]
            # AND while open, answers are 503 problem+json with Retry-After, without the backend
            # (how fast they come is a bench figure: `make bench proxy`, "breaker open")
            answers = [one_worker.get("/chain/info") for _ in range(10)]
            for answer in answers:
                assert answer.status_code == 503
                assert answer.headers["content-type"] == PROBLEM_JSON
                assert answer.json()["breaker"] == "open"
                assert 1 <= int(answer.headers["retry-after"]) <= 2
            assert revived.connections == 0
            # AND the other worker shares the open breaker (it is kept in Redis)
            with edge.client(headers=FRESH) as fresh:
                assert Counter(fresh.get("/chain/info").status_code for _ in range(20)) == {503: 20}
            # AND the backend, although up again, was not touched
            assert revived.connections == 0
            # WHEN the open period ends THEN one probe goes through and closes the breaker
            time.sleep(int(answers[-1].headers["retry-after"]))
            assert one_worker.get("/chain/info").status_code == 200
            assert len(revived.received) == 1
            with edge.client(headers=FRESH) as fresh:
                assert Counter(fresh.get("/chain/info").status_code for _ in range(10)) == {200: 10}


def test_a_backend_stuck_on_chain_routes_does_not_hold_up_health(
    edge: SubprocessEdge, chain: BackendServer
) -> None:
    # GIVEN 16 requests to /chain/info (fresh connections: both workers) held by the backend
    chain.mode = "hold"
    chain.release.clear()
    statuses: list[int] = []

    def call_chain() -> None:
        statuses.append(httpx.get(edge.url + "/chain/info", headers=FRESH, timeout=30).status_code)

    callers = [threading.Thread(target=call_chain) for _ in range(16)]
    try:
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + 20
        while len(chain.received) < 16:
            assert time.monotonic() < deadline, f"{len(chain.received)} of 16 reached the backend"
            time.sleep(0.01)
        # WHEN /health is asked meanwhile, on fresh connections
        health = [httpx.get(edge.url + "/health", headers=FRESH, timeout=30) for _ in range(5)]
        # THEN it answers while every /chain call still waits: the proxy's instances are its own
        # (when all functions shared one pool, /health waited behind the held /chain calls)
        assert [response.status_code for response in health] == [200] * 5
        assert statuses == []
    finally:
        chain.release.set()
        for caller in callers:
            caller.join(30)
    assert statuses == [200] * 16
