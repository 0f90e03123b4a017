"""The sessions function through its real handler: create, read, update, end, and what it refuses.

MongoDB is mongomock (a fresh in-memory database per test); Redis is the real test server.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from pymongo.database import Database

from tests.utils.datastore import User, call, stored
from tests.utils.events import http_event, lambda_context
from tests.utils.functions import load_module

api = partial(call, "sessions")


def create(user: User, **body: Any) -> dict[str, Any]:
    reply = api("POST", "/sessions", caller=user, body={"name": "render", **body})
    assert reply.status == 201, reply.body
    session: dict[str, Any] = reply.body
    return session


def test_create_answers_201_with_location_etag_and_a_pending_session(alice: User) -> None:
    reply = api(
        "POST",
        "/sessions",
        caller=alice,
        body={"name": "  render job ", "node_id": "node-7", "metadata": {"gpu": {"count": 2}}},
    )
    assert reply.status == 201
    session = reply.body
    assert reply.headers["location"] == f"/sessions/{session['id']}"
    assert reply.headers["etag"] == '"1"'
    # a POST without an Idempotency-Key is never a replay (Idempotent-Replayed: only for keyed)
    assert "idempotent-replayed" not in reply.headers
    assert session["owner_id"] == alice.id
    assert session["name"] == "render job"
    assert session["status"] == "pending"
    assert session["metadata"] == {"gpu": {"count": 2}}
    assert session["version"] == 1
    assert session["started_at"] is None
    assert session["ended_at"] is None
    assert session["created_at"].endswith("Z")
    assert len(session["id"]) == 32


def test_a_create_without_a_key_answers_the_headers_a_keyed_one_does(alice: User) -> None:
    # GIVEN a create without an Idempotency-Key and one with (whose headers are stored for a
    # replay, then set on the response one by one)
    plain = api("POST", "/sessions", caller=alice, body={"name": "a"})
    keyed = api(
        "POST", "/sessions", caller=alice, body={"name": "a"}, headers={"Idempotency-Key": "h-1"}
    )
    # THEN both answer the same headers, in the same order, each with its own Location and ETag
    assert list(plain.headers) == list(keyed.headers)
    for reply in (plain, keyed):
        assert reply.status == 201
        assert reply.headers["location"] == f"/sessions/{reply.body['id']}"
        assert reply.headers["etag"] == '"1"'
        assert {
            k: v for k, v in reply.headers.items() if k not in ("location", "x-request-id")
        } == {k: v for k, v in plain.headers.items() if k not in ("location", "x-request-id")}


def test_get_returns_the_session_with_its_etag(alice: User) -> None:
    session = create(alice)
    reply = api("GET", f"/sessions/{session['id']}", caller=alice)
    assert reply.status == 200
    assert reply.body == session
    assert reply.headers["etag"] == '"1"'


def test_status_moves_pending_to_active_to_ended_with_timestamps(alice: User) -> None:
    session = create(alice)
    path = f"/sessions/{session['id']}"
    active = api("PATCH", path, caller=alice, body={"status": "active"})
    assert active.status == 200
    assert active.body["status"] == "active"
    assert active.body["started_at"] is not None
    assert active.headers["etag"] == '"2"'
    ended = api("PATCH", path, caller=alice, body={"status": "ended"})
    assert ended.body["status"] == "ended"
    assert ended.body["ended_at"] is not None
    assert ended.body["version"] == 3


def test_pending_may_end_directly(alice: User) -> None:
    session = create(alice)
    reply = api("PATCH", f"/sessions/{session['id']}", caller=alice, body={"status": "ended"})
    assert reply.status == 200
    assert reply.body["status"] == "ended"
    assert reply.body["started_at"] is None


def test_forbidden_transition_is_409_listing_the_allowed_ones(alice: User) -> None:
    session = create(alice)
    path = f"/sessions/{session['id']}"
    api("PATCH", path, caller=alice, body={"status": "active"})
    reply = api("PATCH", path, caller=alice, body={"status": "pending"})
    assert reply.status == 409
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.body["allowed"] == ["ended"]
    assert reply.body["detail"] == "an active session cannot become pending"
    # THEN the body names the session's current status beside RFC 9457's `status` (README)
    assert reply.body["status"] == 409
    assert reply.body["current_status"] == "active"
    assert api("GET", path, caller=alice).body["status"] == "active"


def test_an_ended_session_cannot_be_changed(alice: User) -> None:
    session = create(alice)
    path = f"/sessions/{session['id']}"
    assert api("DELETE", path, caller=alice).status == 204
    reply = api("PATCH", path, caller=alice, body={"name": "again"})
    assert reply.status == 409
    assert reply.body["allowed"] == []
    assert reply.body["current_status"] == "ended"


def test_patch_changes_name_and_metadata_and_bumps_the_version(alice: User) -> None:
    session = create(alice, metadata={"a": 1})
    reply = api(
        "PATCH",
        f"/sessions/{session['id']}",
        caller=alice,
        body={"name": "renamed", "metadata": {"b": [1, {"c": None}]}},
    )
    assert reply.status == 200
    assert reply.body["name"] == "renamed"
    assert reply.body["metadata"] == {"b": [1, {"c": None}]}
    assert reply.body["version"] == 2


def test_patch_that_changes_nothing_writes_nothing(alice: User) -> None:
    session = create(alice)
    reply = api("PATCH", f"/sessions/{session['id']}", caller=alice, body={"name": "render"})
    assert reply.status == 200
    assert reply.body["version"] == 1
    assert reply.body["updated_at"] == session["updated_at"]


def test_delete_ends_the_session_and_is_204_again(alice: User) -> None:
    session = create(alice)
    path = f"/sessions/{session['id']}"
    first = api("DELETE", path, caller=alice)
    assert first.status == 204
    assert first.body is None
    ended = api("GET", path, caller=alice).body
    assert ended["status"] == "ended"
    assert ended["ended_at"] is not None
    assert api("DELETE", path, caller=alice).status == 204
    assert api("GET", path, caller=alice).body["version"] == ended["version"]


@pytest.mark.parametrize(
    "field", ["owner_id", "status", "version", "id", "_id", "created_at", "ended_at"]
)
def test_create_refuses_fields_the_client_does_not_own(alice: User, field: str) -> None:
    reply = api("POST", "/sessions", caller=alice, body={"name": "x", field: "y"})
    assert reply.status == 422
    assert field in reply.body["detail"]


@pytest.mark.parametrize("field", ["owner_id", "version", "id", "role", "started_at"])
def test_patch_refuses_mass_assignment_naming_the_field(
    alice: User, database: Database[dict[str, Any]], field: str
) -> None:
    session = create(alice)
    reply = api("PATCH", f"/sessions/{session['id']}", caller=alice, body={"name": "n", field: "x"})
    assert reply.status == 422
    assert field in reply.body["detail"]
    assert stored(database["sessions"], session["id"])["name"] == "render"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "node_id": "n" * 65}, "node_id"),
        ({"name": "x", "node_id": "bad node/"}, "node_id"),
        ({"name": "x", "metadata": {"$where": "1"}}, "metadata"),
        ({"name": "x", "metadata": {"a": {"b.c": 1}}}, "metadata"),
        ({"name": "x", "metadata": {"a": [{"$gt": ""}]}}, "metadata"),
        ({"name": "x", "metadata": {"blob": "x" * 16400}}, "metadata"),
        ({"name": "x", "metadata": ["not", "an", "object"]}, "metadata"),
        ({}, "name"),
    ],
)
def test_create_validates_every_field(alice: User, body: dict[str, Any], field: str) -> None:
    reply = api("POST", "/sessions", caller=alice, body=body)
    assert reply.status == 422
    assert field in reply.body["detail"]
    assert reply.headers["content-type"] == "application/problem+json"


def test_metadata_just_under_16_kb_is_accepted(alice: User) -> None:
    session = create(alice, metadata={"blob": "x" * 16000})
    assert len(session["metadata"]["blob"]) == 16000


def test_metadata_of_exactly_16_kb_as_json_is_accepted_and_one_byte_more_refused(
    alice: User,
) -> None:
    # {"blob":"x...x"} is 11 bytes of JSON around the string
    exact = {"blob": "x" * (16 * 1024 - 11)}
    assert len(json.dumps(exact, separators=(",", ":"))) == 16 * 1024
    assert create(alice, metadata=exact)["metadata"] == exact
    over = api(
        "POST",
        "/sessions",
        caller=alice,
        body={"name": "n", "metadata": {"blob": "x" * (16 * 1024 - 10)}},
    )
    assert over.status == 422
    assert "must be at most 16384 bytes as JSON" in json.dumps(over.body)


def test_metadata_nested_beyond_16_levels_is_refused(alice: User) -> None:
    deep: dict[str, Any] = {}
    for _ in range(20):
        deep = {"k": deep}
    reply = api("POST", "/sessions", caller=alice, body={"name": "x", "metadata": deep})
    assert reply.status == 422


def _nested(levels: int, leaf: object) -> object:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize("leaf", [1, "text", [1, 2]], ids=["number", "string", "array"])
def test_metadata_of_16_levels_is_stored_and_17_is_refused(alice: User, leaf: object) -> None:
    # GIVEN metadata nested exactly 16 levels deep (objects, or 15 objects around an array)
    levels = 15 if isinstance(leaf, list) else 16
    # WHEN it is stored, THEN it is kept whole (README: only "deeper than 16 levels" is a 422)
    reply = api(
        "POST", "/sessions", caller=alice, body={"name": "x", "metadata": _nested(levels, leaf)}
    )
    assert reply.status == 201, reply.body
    assert reply.body["metadata"] == _nested(levels, leaf)
    # AND one level more is a 422 naming the field
    reply = api(
        "POST", "/sessions", caller=alice, body={"name": "x", "metadata": _nested(levels + 1, leaf)}
    )
    assert reply.status == 422
    assert reply.body["errors"][0]["loc"] == ["body", "metadata"]


def test_metadata_with_nan_is_refused(alice: User) -> None:
    reply = api("POST", "/sessions", caller=alice, body='{"name": "x", "metadata": {"a": NaN}}')
    assert reply.status == 422


@pytest.mark.parametrize("field", ["name", "status", "metadata"])
def test_patch_refuses_null(alice: User, field: str) -> None:
    session = create(alice)
    reply = api("PATCH", f"/sessions/{session['id']}", caller=alice, body={field: None})
    assert reply.status == 422
    assert field in reply.body["detail"]


def test_patch_refuses_an_unknown_status(alice: User) -> None:
    session = create(alice)
    reply = api("PATCH", f"/sessions/{session['id']}", caller=alice, body={"status": "paused"})
    assert reply.status == 422


@pytest.mark.parametrize(
    "session_id",
    ["nope", "0" * 31, "0" * 33, "A" * 32, '{"$ne":null}', "%7B%22%24ne%22%3Anull%7D", "0" * 32],
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_or_unknown_ids_are_404(alice: User, session_id: str, method: str) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    reply = api(method, f"/sessions/{session_id}", caller=alice, body=body)
    assert reply.status == 404
    assert reply.headers["content-type"] == "application/problem+json"


def test_a_request_without_authorizer_context_is_401(database: Database[dict[str, Any]]) -> None:
    reply = api("GET", "/sessions", caller=None)
    assert reply.status == 401


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/sessions"), ("POST", "/sessions/" + "0" * 32)]
)
def test_methods_the_routes_do_not_serve_are_405(alice: User, method: str, path: str) -> None:
    assert api(method, path, caller=alice, body={}).status == 405


def test_a_flood_of_unknown_fields_is_a_422_small_enough_for_lambda_to_return(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a 0.8 MB body of 60,000 fields the client does not own, one with a 100 KB name
    body = {"name": "x", "n" * 100_000: 0, **{f"k{i}": 0 for i in range(60_000)}}
    event = http_event(
        "POST",
        "/sessions",
        body=json.dumps(body, separators=(",", ":")),
        headers={"content-type": "application/json"},
        authorizer=alice.context,
    )
    assert len(json.dumps(event)) < 6_291_456
    # WHEN it is sent
    result = load_module("sessions").handler(event, lambda_context("sessions"))
    # THEN the answer is a 422 naming the first fields and how many more there are, within
    # Lambda's 6,291,556-byte result (the list of every field was 6.9 MB here, a bare 500 on
    # AWS; 45 MB for 400,000 fields), and echoing no field name whole
    assert result["statusCode"] == 422
    assert len(json.dumps(result)) < 64 * 1024
    problem = json.loads(result["body"])
    assert problem["detail"].endswith(", k18 and 59981 more")
    assert len(problem["errors"]) == 20
    assert problem["errors_omitted"] == 59_981
    assert len(problem["errors"][0]["loc"][1]) == 64
    assert database["sessions"].count_documents({}) == 0


def test_a_field_name_of_64_characters_is_named_whole_and_a_longer_one_cut(alice: User) -> None:
    # WHEN a create names two fields the client does not own, of 64 and 65 characters
    reply = api("POST", "/sessions", caller=alice, body={"name": "x", "f" * 64: 0, "g" * 65: 0})
    # THEN the 422 names the first as sent and the second cut to 64 characters, ending in "…"
    assert reply.status == 422
    assert [error["loc"][1] for error in reply.body["errors"]] == ["f" * 64, "g" * 63 + "…"]


@pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "\x07bell", "del\x7f", "c1\x9b"])
def test_a_session_name_with_a_control_character_is_422_and_nothing_changes(
    alice: User, database: Database[dict[str, Any]], name: str
) -> None:
    # WHEN a session is created, or renamed, with a control character in its name
    created = api("POST", "/sessions", caller=alice, body={"name": name})
    session = create(alice)
    renamed = api("PATCH", f"/sessions/{session['id']}", caller=alice, body={"name": name})
    # THEN each is a 422 naming the field and the character, and nothing was stored
    control = next(char for char in name if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F)
    for reply in (created, renamed):
        assert reply.status == 422
        assert reply.body["errors"][0]["loc"] == ["body", "name"]
        assert f"is U+{ord(control):04X}" in reply.body["errors"][0]["msg"]
    assert database["sessions"].count_documents({}) == 1
    assert stored(database["sessions"], session["id"])["name"] == "render"
