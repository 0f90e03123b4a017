"""What the attack run on the gateway broke besides revocation (issue 12, findings 6 to 9), end
to end: `lucid serve` with two workers and rate limits on, real HTTP on 127.0.0.1 from two source
addresses (127.0.0.1 and 127.0.0.2, both loopback), a real backend server behind the proxy.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.flows import Account, create_session, problem, sign_in
from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge
from tests.shared.proxy.proxy_backends import BackendServer, running_backend
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.e2e

SIGNIN_PER_ADDRESS = 5
SIGNIN_PER_IP = 50
OTHER_SOURCE = "127.0.0.2"  # loopback too: the edge sees it as another client address


@pytest.fixture(scope="module")
def chain() -> Iterator[BackendServer]:
    with running_backend() as server:
        yield server


@pytest.fixture(scope="module")
def module_edge(chain: BackendServer) -> Iterator[SubprocessEdge]:
    env = {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_SIGNIN_PER_ADDRESS": str(SIGNIN_PER_ADDRESS),
        "RATE_LIMIT_SIGNIN_PER_IP": str(SIGNIN_PER_IP),
        "BLOCKCHAIN_SERVICE_URL": chain.url,
    }
    with subprocess_edge(env) as running:
        yield running


@pytest.fixture
def edge(module_edge: SubprocessEdge, redis_client: redis.Redis) -> SubprocessEdge:
    """The edge with every rate-limit counter reset (`redis_client` flushes its Redis)."""
    return module_edge


def from_other_source(edge: SubprocessEdge) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=OTHER_SOURCE)
    return edge.client(transport=transport)


# --- finding 6 ---------------------------------------------------------------------------


def test_nobody_can_lock_someone_elses_address_out_of_sign_in(
    edge: SubprocessEdge, client: httpx.Client
) -> None:
    victim = Wallet()
    with from_other_source(edge) as attacker:
        # GIVEN an attacker who asks for challenges for the victim's address until refused
        asked = [
            attacker.post("/auth/challenge", json={"address": victim.address})
            for _ in range(SIGNIN_PER_ADDRESS + 1)
        ]
        # THEN the attacker's attempts on that address are bounded
        assert [r.status_code for r in asked] == [200] * SIGNIN_PER_ADDRESS + [429]
        assert "address" in asked[-1].json()["detail"]
    # AND the victim, from their own address, still signs in at once
    account = sign_in(client, victim)
    assert account.wallet.address == victim.address


# --- finding 7 ---------------------------------------------------------------------------

UNSTORABLE = {
    "integer over 64 bits": '{"n": 18446744073709551616}',
    "integer under -2**63": '{"n": -9223372036854775809}',
    "NUL in a key": '{"a\\u0000b": 1}',
    "lone surrogate in a value": '{"a": "\\ud800"}',
    "lone surrogate in a key": '{"\\udfff": 1}',
    "nested big integer": '{"a": [{"b": 99999999999999999999999}]}',
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_values_mongodb_cannot_store_are_422_naming_the_field(
    client: httpx.Client, alice: Account, case: str
) -> None:
    value = UNSTORABLE[case]
    session_id = create_session(client, alice, "kept")
    json_headers = {**alice.auth, "Content-Type": "application/json"}
    attempts = {
        "metadata": client.post(
            "/sessions", content=f'{{"name": "x", "metadata": {value}}}', headers=json_headers
        ),
        "metadata ": client.patch(
            f"/sessions/{session_id}", content=f'{{"metadata": {value}}}', headers=json_headers
        ),
        "preferences": client.patch(
            "/users/me", content=f'{{"preferences": {value}}}', headers=json_headers
        ),
    }
    for field, response in attempts.items():
        body = problem(response, 422, "validation")
        assert body["detail"] == f"invalid {field.strip()}", body
    # AND nothing was written
    assert client.get(f"/sessions/{session_id}", headers=alice.auth).json()["metadata"] == {}
    assert client.get("/users/me", headers=alice.auth).json()["preferences"] == {}


def test_a_forged_cursor_beyond_any_date_is_422(client: httpx.Client, alice: Account) -> None:
    from lucid.store.pagination import query_fingerprint

    fingerprint = query_fingerprint({"owner_id": alice.user_id}, "-created_at")
    raw = json.dumps({"t": 10**20, "i": "0" * 32, "q": fingerprint}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = client.get("/sessions", params={"cursor": cursor}, headers=alice.auth)
    assert problem(response, 422, "validation")["errors"][0]["loc"] == ["query", "cursor"]


# --- finding 8 ---------------------------------------------------------------------------


def test_token_bearing_responses_are_never_stored(client: httpx.Client, alice: Account) -> None:
    rotated = client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    challenge = client.post("/auth/challenge", json={"address": Wallet().address})
    status = client.get("/auth/status", headers=alice.auth)
    for response in (rotated, challenge, status):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"


def test_login_answers_no_store(edge: SubprocessEdge) -> None:
    with edge.client() as http:
        seen: list[httpx.Response] = []
        http.event_hooks["response"] = [seen.append]
        sign_in(http)
    login = next(r for r in seen if r.request.url.path == "/auth/login")
    assert login.headers["cache-control"] == "no-store"


def test_every_response_of_our_functions_says_nosniff(
    client: httpx.Client, alice: Account, chain: BackendServer
) -> None:
    chain.mode = "ok"
    responses = [
        client.get("/health"),
        client.get("/meta/info"),
        client.get("/auth/status"),
        client.post("/auth/challenge", json={}),
        client.get("/users/me", headers=alice.auth),
        client.get("/users/not-an-id", headers=alice.auth),
        client.post("/sessions", json={"name": ""}, headers=alice.auth),
        client.get("/chain/info"),
    ]
    for response in responses:
        assert response.headers.get("x-content-type-options") == "nosniff", response.request.url
    # AND what the edge answers itself is API Gateway's, with API Gateway's headers only
    for own in (client.get("/no/such/route"), client.get("/users/me")):
        assert own.status_code in (401, 404)
        assert own.json() in ({"message": "Not Found"}, {"message": "Unauthorized"})
        assert "x-content-type-options" not in own.headers
        assert "cache-control" not in own.headers


def test_the_proxy_does_not_pass_a_backends_fingerprint_on(
    client: httpx.Client, chain: BackendServer
) -> None:
    # GIVEN a backend that names its server and framework (http.server always sends Server)
    chain.mode = "ok"
    chain.extra_headers = [("X-Powered-By", "Express"), ("X-AspNet-Version", "4.0.30319")]
    try:
        response = client.get("/chain/info")
    finally:
        chain.extra_headers = []
    assert response.status_code == 200
    for name in ("server", "x-powered-by", "x-aspnet-version"):
        assert name not in response.headers, response.headers
    # AND the backend's Date (http.server sends one) does not join the edge's: one Date field
    assert len(response.headers.get_list("date")) == 1, response.headers


def test_meta_info_tells_an_anonymous_caller_no_internals(client: httpx.Client) -> None:
    response = client.get("/meta/info")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert set(body) == {"service", "version", "stage"}
    assert "Function" not in response.text
    assert "Authorizer" not in response.text


# --- finding 9 ---------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["Tnope", "T" + "1" * 33, "0x" + "ab" * 20, " "])
def test_a_malformed_sign_in_address_is_422_naming_the_field(
    client: httpx.Client, address: str
) -> None:
    challenge = client.post("/auth/challenge", json={"address": address})
    body = problem(challenge, 422, "validation")
    assert body["detail"] == "invalid address"
    login = client.post(
        "/auth/login", json={"address": address, "message": "m", "signature": "0x00"}
    )
    assert problem(login, 422, "validation")["detail"] == "invalid address"
