"""Admin routes of the users function (OWASP API5): GET /users and PUT /users/{id}/role.

MongoDB is mongomock (a fresh in-memory database per test).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from pymongo.database import Database

from tests.utils.datastore import User, add_user, call, stored

api = partial(call, "users")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users", None),
        ("PUT", "/users/{id}/role", {"role": "admin"}),
    ],
)
def test_a_user_cannot_call_admin_routes(
    alice: User, database: Database[dict[str, Any]], method: str, path: str, body: Any
) -> None:
    reply = api(method, path.format(id=alice.id), caller=alice, body=body)
    assert reply.status == 403
    assert reply.headers["content-type"] == "application/problem+json"
    assert stored(database["users"], alice.id)["role"] == "user"


def test_admin_lists_users_with_a_role_filter_and_cursor(
    admin: User, database: Database[dict[str, Any]]
) -> None:
    created = [add_user(database).id for _ in range(7)]
    seen: list[str] = []
    cursor = ""
    while True:
        query = "role=user&limit=3&sort=created_at" + (f"&cursor={cursor}" if cursor else "")
        reply = api("GET", "/users", caller=admin, query=query)
        assert reply.status == 200
        seen += [item["id"] for item in reply.body["items"]]
        assert all(item["role"] == "user" for item in reply.body["items"])
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)  # each user once (same-millisecond ties by id)
    admins = api("GET", "/users", caller=admin, query="role=admin").body["items"]
    assert [item["id"] for item in admins] == [admin.id]


@pytest.mark.parametrize(
    "query", ["role=root", "role[$ne]=x", "limit=0", "limit=101", "cursor=%%%"]
)
def test_list_parameters_are_typed(admin: User, query: str) -> None:
    reply = api("GET", "/users", caller=admin, query=query)
    assert reply.status in (200, 422)
    if reply.status == 200:  # an unknown parameter is ignored, never used as a filter
        assert [item["id"] for item in reply.body["items"]] == [admin.id]


def test_admin_promotes_and_demotes(admin: User, bob: User) -> None:
    promoted = api("PUT", f"/users/{bob.id}/role", caller=admin, body={"role": "admin"})
    assert promoted.status == 200
    assert promoted.body["role"] == "admin"
    demoted = api("PUT", f"/users/{bob.id}/role", caller=admin, body={"role": "user"})
    assert demoted.body["role"] == "user"
    again = api("PUT", f"/users/{bob.id}/role", caller=admin, body={"role": "user"})
    assert again.status == 200


def test_the_last_admin_cannot_be_demoted(admin: User, database: Database[dict[str, Any]]) -> None:
    reply = api("PUT", f"/users/{admin.id}/role", caller=admin, body={"role": "user"})
    assert reply.status == 409
    assert "last admin" in reply.body["detail"]
    assert stored(database["users"], admin.id)["role"] == "admin"


@pytest.mark.parametrize("body", [{"role": "root"}, {"role": "admin", "tier": "x"}, {}])
def test_role_body_is_validated(admin: User, bob: User, body: dict[str, Any]) -> None:
    assert api("PUT", f"/users/{bob.id}/role", caller=admin, body=body).status == 422


@pytest.mark.parametrize("user_id", ["nope", "f" * 32])
def test_role_of_a_missing_user_is_404(admin: User, user_id: str) -> None:
    reply = api("PUT", f"/users/{user_id}/role", caller=admin, body={"role": "admin"})
    assert reply.status == 404
