"""GET/PATCH /users/me and GET /users/{id} through the real handler.

MongoDB is mongomock (a fresh in-memory database per test).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from pymongo.database import Database

from tests.utils.datastore import User, call, stored

api = partial(call, "users")


def test_me_is_the_callers_profile(alice: User) -> None:
    reply = api("GET", "/users/me", caller=alice)
    assert reply.status == 200
    assert reply.body["id"] == alice.id
    assert reply.body["address"] == alice.address
    assert reply.body["role"] == "user"
    assert reply.body["display_name"] == "Alice"
    assert reply.body["preferences"] == {}


def test_patch_me_changes_the_three_profile_fields(alice: User) -> None:
    body = {"display_name": " Al ", "email": "al@example.org", "preferences": {"theme": "dark"}}
    reply = api("PATCH", "/users/me", caller=alice, body=body)
    assert reply.status == 200
    assert reply.body["display_name"] == "Al"
    assert reply.body["email"] == "al@example.org"
    assert reply.body["preferences"] == {"theme": "dark"}
    assert api("GET", "/users/me", caller=alice).body == reply.body


def test_patch_me_with_null_clears_and_with_nothing_changes_nothing(alice: User) -> None:
    before = api("GET", "/users/me", caller=alice).body
    assert api("PATCH", "/users/me", caller=alice, body={}).body == before
    cleared = api("PATCH", "/users/me", caller=alice, body={"display_name": None}).body
    assert cleared["display_name"] is None


@pytest.mark.parametrize("field", ["role", "address", "id", "_id", "created_at", "tier"])
def test_patch_me_refuses_every_other_field_by_name(
    alice: User, database: Database[dict[str, Any]], field: str
) -> None:
    reply = api("PATCH", "/users/me", caller=alice, body={"display_name": "x", field: "admin"})
    assert reply.status == 422
    assert field in reply.body["detail"]
    document = stored(database["users"], alice.id)
    assert document["role"] == "user"
    assert document["display_name"] == "Alice"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": "  "}, "display_name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@" + "b" * 250 + ".io"}, "email"),
        ({"preferences": {"$set": {"role": "admin"}}}, "preferences"),
        ({"preferences": {"a.b": 1}}, "preferences"),
        ({"preferences": {"blob": "x" * 5000}}, "preferences"),
        ({"preferences": None}, "preferences"),
        ({"display_name": "Al\x00ice"}, "display_name"),
        ({"display_name": "\x1b[31mAlice"}, "display_name"),
        ({"display_name": "Alice\u0085"}, "display_name"),
        ({"email": "al\x00@example.org"}, "email"),
        ({"email": "al@example.org\r\nBcc: x@y.z"}, "email"),
    ],
)
def test_patch_me_validates_each_field(alice: User, body: dict[str, Any], field: str) -> None:
    reply = api("PATCH", "/users/me", caller=alice, body=body)
    assert reply.status == 422
    assert field in reply.body["detail"]


def test_a_user_reads_themself_by_id_but_nobody_else(alice: User, bob: User) -> None:
    assert api("GET", f"/users/{alice.id}", caller=alice).body["id"] == alice.id
    reply = api("GET", f"/users/{bob.id}", caller=alice)
    assert reply.status == 404
    assert reply.body == {**reply.body, "status": 404}
    missing = api("GET", "/users/" + "f" * 32, caller=alice)
    assert missing.body["detail"] == reply.body["detail"]  # existence is not revealed


def test_an_admin_reads_anyone(admin: User, bob: User) -> None:
    assert api("GET", f"/users/{bob.id}", caller=admin).body["address"] == bob.address


@pytest.mark.parametrize("user_id", ["x", "0" * 31, "Z" * 32, "%24ne", "f" * 32])
def test_malformed_or_unknown_user_ids_are_404(admin: User, user_id: str) -> None:
    assert api("GET", f"/users/{user_id}", caller=admin).status == 404


def test_a_signed_in_user_whose_document_is_gone_gets_404(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    database["users"].delete_one({"_id": alice.id})
    assert api("GET", "/users/me", caller=alice).status == 404
    assert api("PATCH", "/users/me", caller=alice, body={"email": "a@b.co"}).status == 404


def test_without_authorizer_context_it_is_401(database: Database[dict[str, Any]]) -> None:
    assert api("GET", "/users/me", caller=None).status == 401


def test_unserved_methods_on_me_are_405(alice: User) -> None:
    assert api("POST", "/users/me", caller=alice, body={}).status == 405


def test_a_control_character_is_named_where_it_is_and_nothing_is_stored(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # WHEN a display name carries a NUL
    reply = api("PATCH", "/users/me", caller=alice, body={"display_name": "Al\x00ice"})
    # THEN the 422 names the field, the character and where it is, and nothing changed
    assert reply.status == 422
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.body["detail"] == "invalid display_name"
    error = reply.body["errors"][0]
    assert error["loc"] == ["body", "display_name"]
    assert error["msg"].endswith("must not contain control characters: character 3 is U+0000")
    assert stored(database["users"], alice.id)["display_name"] == "Alice"
