"""Users and administration end to end: `lucid serve` (two workers) on the real template with one
admin address configured, users signed in with TRON wallets, real HTTP on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from lucid_edge.local import EmbeddedRedis
from tests.e2e.conftest import NAMED_STAGE, ON_A_NAMED_STAGE, on_stage
from tests.e2e.flows import (
    AUTHORIZER_TTL_SECONDS,
    Account,
    create_session,
    in_threads,
    problem,
    served_edge,
    sign_in,
    walk,
)
from tests.e2e.subprocess_edge import SubprocessEdge
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.e2e
ADMIN_WALLET = Wallet()


@pytest.fixture(scope="module")
def default_edge(redis_server: EmbeddedRedis) -> Iterator[SubprocessEdge]:
    with served_edge(redis_server.uri, {"ADMIN_ADDRESSES": ADMIN_WALLET.address}) as served:
        yield served


@pytest.fixture(scope="module")
def dev_edge(redis_server: EmbeddedRedis) -> Iterator[SubprocessEdge]:
    env = {"ADMIN_ADDRESSES": ADMIN_WALLET.address}
    with served_edge(redis_server.uri, env, stage=NAMED_STAGE) as served:
        yield served


@pytest.fixture
def edge(request: pytest.FixtureRequest) -> SubprocessEdge:
    served: SubprocessEdge = on_stage(request)
    return served


@pytest.fixture
def admin(client: httpx.Client) -> Account:
    account = sign_in(client, ADMIN_WALLET)
    assert client.get("/users/me", headers=account.auth).json()["role"] == "admin"
    return account


def _me(client: httpx.Client, account: Account) -> dict[str, object]:
    response = client.get("/users/me", headers=account.auth)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def refused(response: httpx.Response, status: int, slug: str) -> None:
    """A token whose sign-in was revoked is refused by whoever sees it first: the authorizer at
    an uncached decision (API Gateway's 403 `{"message":"Forbidden"}`), or the function when the
    edge worker that took the request still had the decision cached (its problem+json)."""
    if response.headers.get("content-type") == "application/json":
        assert response.status_code == 403, response.text
        assert response.json() == {"message": "Forbidden"}
    else:
        problem(response, status, slug)


def test_a_user_cannot_call_admin_routes(client: httpx.Client, alice: Account) -> None:
    # WHEN a plain user lists users or makes herself an admin
    listing = client.get("/users", headers=alice.auth)
    promotion = client.put(
        f"/users/{alice.user_id}/role", json={"role": "admin"}, headers=alice.auth
    )
    # THEN both are 403 problems and her role is unchanged
    problem(listing, 403, "forbidden")
    problem(promotion, 403, "forbidden")
    assert _me(client, alice)["role"] == "user"


@ON_A_NAMED_STAGE
def test_admin_lists_users_by_cursor_and_changes_a_role(
    client: httpx.Client, admin: Account, alice: Account, bob: Account
) -> None:
    newcomers = {sign_in(client).user_id for _ in range(3)} | {alice.user_id, bob.user_id}
    # WHEN the admin walks every user two at a time
    users = walk(client, "/users", admin, {"limit": 2})
    ids = [user["id"] for user in users]
    # THEN each user appears once, newest first, the new ones among them
    assert len(ids) == len(set(ids))
    assert newcomers <= set(ids)
    assert admin.user_id in ids
    order = [(user["created_at"], user["id"]) for user in users]
    assert order == sorted(order, reverse=True)
    # AND the role filter lists the admins only
    admins = walk(client, "/users", admin, {"role": "admin", "limit": 2})
    assert admin.user_id in {user["id"] for user in admins}
    assert {user["role"] for user in admins} == {"admin"}
    assert newcomers.isdisjoint(user["id"] for user in admins)

    # WHEN the admin promotes Alice
    promoted = client.put(
        f"/users/{alice.user_id}/role", json={"role": "admin"}, headers=admin.auth
    )
    # THEN she is an admin, and her next sign-in carries the role to the admin routes
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "admin"
    # her old token: its sign-in was revoked with the role change (401: sign in again)
    refused(client.get("/users", headers=alice.auth), 401, "invalid-token")
    alice_again = sign_in(client, alice.wallet)
    assert client.get("/users", headers=alice_again.auth).status_code == 200
    # WHEN the admin demotes her again THEN she is a user, signed out everywhere
    demoted = client.put(f"/users/{alice.user_id}/role", json={"role": "user"}, headers=admin.auth)
    assert demoted.json()["role"] == "user"
    assert client.get(f"/users/{alice.user_id}", headers=admin.auth).json()["role"] == "user"
    refused(client.get("/users", headers=alice_again.auth), 401, "invalid-token")
    refused(client.get("/users/me", headers=alice_again.auth), 401, "invalid-token")
    # AND roles outside the two, and unknown users, are refused
    bad = client.put(f"/users/{bob.user_id}/role", json={"role": "root"}, headers=admin.auth)
    problem(bad, 422, "validation")
    unknown = f"/users/{uuid.uuid4().hex}/role"
    problem(client.put(unknown, json={"role": "admin"}, headers=admin.auth), 404, "not-found")
    assert _me(client, bob)["role"] == "user"


def test_the_last_admin_cannot_be_demoted(client: httpx.Client, admin: Account) -> None:
    # GIVEN a second admin, so that demoting one is allowed
    other = sign_in(client)
    promote = client.put(f"/users/{other.user_id}/role", json={"role": "admin"}, headers=admin.auth)
    assert promote.status_code == 200
    admins = walk(client, "/users", admin, {"role": "admin"})
    assert len(admins) >= 2
    # WHEN every admin but one is demoted
    for user in admins:
        if user["id"] != admin.user_id:
            demoted = client.put(
                f"/users/{user['id']}/role", json={"role": "user"}, headers=admin.auth
            )
            assert demoted.status_code == 200, demoted.text
    # THEN demoting the last one is a 409 and it stays admin
    last = client.put(f"/users/{admin.user_id}/role", json={"role": "user"}, headers=admin.auth)
    assert "last admin" in problem(last, 409, "conflict")["detail"]
    assert _me(client, admin)["role"] == "admin"
    # AND the last admin cannot close its account either
    problem(client.delete("/users/me", headers=admin.auth), 409, "conflict")
    assert _me(client, admin)["role"] == "admin"


def test_admins_leaving_at_once_through_two_workers_leave_exactly_one(
    edge: SubprocessEdge, client: httpx.Client, admin: Account
) -> None:
    # GIVEN six admins (five promoted and signed in again for the new role), and no other
    team = [admin]
    for _ in range(5):
        newcomer = sign_in(client)
        promote = client.put(
            f"/users/{newcomer.user_id}/role", json={"role": "admin"}, headers=admin.auth
        )
        assert promote.status_code == 200, promote.text
        team.append(sign_in(client, newcomer.wallet))
    ours = {member.user_id for member in team}
    for user in walk(client, "/users", admin, {"role": "admin"}):
        if user["id"] not in ours:  # left by another test of this module's edge
            path = f"/users/{user['id']}/role"
            assert client.put(path, json={"role": "user"}, headers=admin.auth).status_code == 200

    # WHEN all six leave at the same moment, half closing their accounts and half demoting
    # themselves, spread over the edge's two worker processes
    def leave(i: int) -> httpx.Response:
        member = team[i]
        with edge.client() as own:
            if i % 2:
                return own.delete("/users/me", headers=member.auth)
            path = f"/users/{member.user_id}/role"
            return own.put(path, json={"role": "user"}, headers=member.auth)

    replies = in_threads(len(team), leave)
    # THEN exactly one was refused, with a precise 409, and it is the one admin left
    refused = [i for i, reply in enumerate(replies) if reply.status_code == 409]
    assert len(refused) == 1, [reply.status_code for reply in replies]
    assert "last admin cannot" in problem(replies[refused[0]], 409, "conflict")["detail"]
    assert all(
        reply.status_code in (200, 204) for i, reply in enumerate(replies) if i != refused[0]
    )
    stays = team[refused[0]]
    admins = walk(client, "/users", stays, {"role": "admin"})
    assert [user["id"] for user in admins] == [stays.user_id]


@pytest.mark.parametrize(
    ("field", "value"),
    [("role", "admin"), ("address", "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"), ("id", "0" * 32)],
)
def test_profile_patch_refuses_fields_a_client_may_not_set(
    client: httpx.Client, alice: Account, field: str, value: str
) -> None:
    before = _me(client, alice)
    # WHEN Alice sends a forbidden field beside an allowed one
    response = client.patch(
        "/users/me", json={"display_name": "Eve", field: value}, headers=alice.auth
    )
    # THEN it is a 422 naming the field, and nothing (not even the display name) changed
    body = problem(response, 422, "validation")
    assert body["detail"] == f"invalid {field}"
    assert [error["loc"] for error in body["errors"]] == [["body", field]]
    assert _me(client, alice) == before


def test_profile_patch_changes_only_what_is_sent(client: httpx.Client, alice: Account) -> None:
    changes = {"display_name": "Alice", "email": "alice@example.org", "preferences": {"k": 1}}
    response = client.patch("/users/me", json=changes, headers=alice.auth)
    assert response.status_code == 200, response.text
    me = _me(client, alice)
    assert {name: me[name] for name in changes} == changes
    assert (me["role"], me["address"]) == ("user", alice.wallet.address)
    # Preferences keys that MongoDB would read as operators are refused.
    forged = client.patch("/users/me", json={"preferences": {"$set": 1}}, headers=alice.auth)
    assert problem(forged, 422, "validation")["detail"] == "invalid preferences"


@ON_A_NAMED_STAGE
def test_profiles_of_others_and_malformed_ids_are_404(
    client: httpx.Client, admin: Account, alice: Account, bob: Account
) -> None:
    # A user reads her own profile by id, not Bob's, nor anyone that does not exist.
    assert client.get(f"/users/{alice.user_id}", headers=alice.auth).json()["id"] == alice.user_id
    others = problem(client.get(f"/users/{bob.user_id}", headers=alice.auth), 404, "not-found")
    missing = client.get(f"/users/{uuid.uuid4().hex}", headers=alice.auth)
    assert problem(missing, 404, "not-found")["detail"] == others["detail"]
    assert bob.wallet.address not in str(others)
    # An admin reads anyone's.
    assert client.get(f"/users/{bob.user_id}", headers=admin.auth).json()["id"] == bob.user_id
    for malformed in ("xyz", "A" * 32, "0" * 31, "%7B%22%24ne%22%3Anull%7D"):
        response = client.get(f"/users/{malformed}", headers=admin.auth)
        assert response.status_code == 404, malformed
        assert response.json()["detail"] == "no such user"
    # Query operators: bracketed names are ignored, operator documents refused.
    inert = client.get("/users?role[$ne]=admin", headers=admin.auth)
    assert inert.status_code == 200
    assert {user["role"] for user in inert.json()["items"]} >= {"user"}
    refused = client.get("/users", params={"role": '{"$ne":null}'}, headers=admin.auth)
    assert [e["loc"] for e in problem(refused, 422, "validation")["errors"]] == [["query", "role"]]


def test_closing_an_account_ends_its_sessions_and_retires_its_tokens(
    client: httpx.Client, admin: Account, alice: Account
) -> None:
    # GIVEN Alice has a pending and an active session
    pending = create_session(client, alice, "pending")
    active = create_session(client, alice, "active")
    start = client.patch(f"/sessions/{active}", json={"status": "active"}, headers=alice.auth)
    assert start.status_code == 200
    # WHEN she closes her account
    closed = client.delete("/users/me", headers=alice.auth)
    assert (closed.status_code, closed.content) == (204, b"")
    # THEN both sessions are ended, not orphaned
    sessions = client.get(
        "/sessions", params={"owner_id": alice.user_id}, headers=admin.auth
    ).json()["items"]
    assert {item["id"]: item["status"] for item in sessions} == {
        pending: "ended",
        active: "ended",
    }
    assert all(item["ended_at"] is not None for item in sessions)
    # AND her profile is gone
    problem(client.get(f"/users/{alice.user_id}", headers=admin.auth), 404, "not-found")
    # AND once the edge's cached authorizer decision expires, her access token is refused
    time.sleep(AUTHORIZER_TTL_SECONDS + 0.2)
    for path in ("/users/me", "/sessions"):
        refused = client.get(path, headers=alice.auth)
        assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"})
    # AND her refresh token cannot mint a new one
    refresh = client.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert refresh.status_code == 401
    assert refresh.headers["content-type"] == "application/problem+json"
    assert alice.refresh_token not in refresh.text
