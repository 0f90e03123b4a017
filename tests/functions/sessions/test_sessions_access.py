"""Object-level authorization (OWASP API1) and typed queries on the sessions function.

GIVEN users A (alice) and B (bob) and an admin, each with an authorizer context; MongoDB is
mongomock, Redis the real test server.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from pymongo.database import Database

from tests.utils.datastore import User, call, stored

api = partial(call, "sessions")


@pytest.fixture
def alices_session(alice: User) -> dict[str, Any]:
    reply = api("POST", "/sessions", caller=alice, body={"name": "alice's"})
    assert reply.status == 201
    session: dict[str, Any] = reply.body
    return session


def test_b_cannot_read_a_session_of_a(bob: User, alices_session: dict[str, Any]) -> None:
    reply = api("GET", f"/sessions/{alices_session['id']}", caller=bob)
    assert reply.status == 404
    assert "alice" not in str(reply.body)


def test_b_cannot_change_a_session_of_a(
    bob: User, alices_session: dict[str, Any], database: Database[dict[str, Any]]
) -> None:
    path = f"/sessions/{alices_session['id']}"
    assert api("PATCH", path, caller=bob, body={"name": "mine"}).status == 404
    assert (
        api("PATCH", path, caller=bob, body={"status": "ended"}, headers={"If-Match": '"1"'}).status
        == 404
    )
    document = stored(database["sessions"], alices_session["id"])
    assert document["name"] == "alice's"
    assert document["version"] == 1


def test_b_cannot_end_a_session_of_a(
    bob: User, alice: User, alices_session: dict[str, Any]
) -> None:
    path = f"/sessions/{alices_session['id']}"
    assert api("DELETE", path, caller=bob).status == 404
    assert api("GET", path, caller=alice).body["status"] == "pending"


def test_b_cannot_list_the_sessions_of_a(
    bob: User, alice: User, alices_session: dict[str, Any]
) -> None:
    assert api("GET", "/sessions", caller=bob).body["items"] == []
    reply = api("GET", "/sessions", caller=bob, query=f"owner_id={alice.id}")
    assert reply.status == 404


def test_a_user_may_name_themself_as_owner(alice: User, alices_session: dict[str, Any]) -> None:
    reply = api("GET", "/sessions", caller=alice, query=f"owner_id={alice.id}")
    assert [item["id"] for item in reply.body["items"]] == [alices_session["id"]]


def test_an_admin_reads_changes_ends_and_lists_any_session(
    admin: User, alice: User, alices_session: dict[str, Any]
) -> None:
    path = f"/sessions/{alices_session['id']}"
    assert api("GET", path, caller=admin).status == 200
    listed = api("GET", "/sessions", caller=admin, query=f"owner_id={alice.id}")
    assert [item["id"] for item in listed.body["items"]] == [alices_session["id"]]
    assert api("GET", "/sessions", caller=admin).body["items"] == []  # own by default
    changed = api("PATCH", path, caller=admin, body={"status": "active"})
    assert changed.status == 200
    assert changed.body["owner_id"] == alice.id
    assert api("DELETE", path, caller=admin).status == 204


def test_a_created_session_always_belongs_to_the_caller(bob: User, alice: User) -> None:
    # GIVEN bob forging identity headers a naive service might trust
    headers = {"X-User-Id": alice.id, "X-Forwarded-For": "10.0.0.1"}
    reply = api("POST", "/sessions", caller=bob, body={"name": "x"}, headers=headers)
    assert reply.body["owner_id"] == bob.id


@pytest.mark.parametrize(
    "query",
    [
        "owner_id[$ne]=null",
        "status[$ne]=ended",
        "owner_id=%7B%22%24ne%22%3A%20null%7D",
        "status=%7B%22%24ne%22%3A%20null%7D",
        "limit=%7B%22%24gt%22%3A0%7D",
        "sort=%7B%22%24natural%22%3A1%7D",
        "owner_id=" + "a" * 31,
    ],
)
def test_operator_injection_in_query_parameters_never_reaches_a_filter(
    bob: User, alices_session: dict[str, Any], query: str
) -> None:
    reply = api("GET", "/sessions", caller=bob, query=query)
    # Either refused as malformed (422) or ignored as an unknown parameter: never A's data.
    assert reply.status in (200, 422)
    if reply.status == 200:
        assert reply.body["items"] == []


def test_status_filter_is_typed(alice: User) -> None:
    for name in ("one", "two"):
        api("POST", "/sessions", caller=alice, body={"name": name})
    first = api("GET", "/sessions", caller=alice, query="sort=created_at").body["items"][0]
    api("PATCH", f"/sessions/{first['id']}", caller=alice, body={"status": "active"})
    active = api("GET", "/sessions", caller=alice, query="status=active").body["items"]
    assert [item["name"] for item in active] == ["one"]
    assert api("GET", "/sessions", caller=alice, query="status=paused").status == 422


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=", "sort=name"])
def test_pagination_parameters_are_bounded(alice: User, query: str) -> None:
    reply = api("GET", "/sessions", caller=alice, query=query)
    assert reply.status == 422
    assert reply.headers["content-type"] == "application/problem+json"
