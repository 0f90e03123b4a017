"""Optimistic concurrency, idempotent creation and cursor pagination under concurrent writes.

MongoDB is mongomock with atomic writes (see tests/utils/datastore.py); Redis (idempotency keys)
is the real test server; concurrent requests run on real threads through the handler.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.errors import ValidationFailedError
from lucid.sessions.repository import SessionRepository
from lucid.sessions.schemas import SessionCreate
from lucid.store.keys import idempotency_prefix
from lucid.store.pagination import (
    Position,
    decode_cursor,
    encode_cursor,
    query_fingerprint,
)
from lucid.web.idempotency import fingerprint
from tests.utils.datastore import User, call, in_threads, stored
from tests.utils.openapi import assert_documented, documented_headers

api = partial(call, "sessions")


def create(user: User, name: str = "s") -> dict[str, Any]:
    reply = api("POST", "/sessions", caller=user, body={"name": name})
    assert reply.status == 201
    session: dict[str, Any] = reply.body
    return session


def another_writer_before_each_write(
    monkeypatch: pytest.MonkeyPatch,
    sessions: Any,
    session_id: str,
    change: dict[str, Any],
    *,
    times: int | None = None,
) -> None:
    """Make another writer apply `change` (and move the version on) just before each of the
    next `times` writes to the sessions collection (every write when None)."""
    real_write = type(sessions).find_one_and_update
    done: list[bool] = []

    def other_writer_first(self: Any, *args: Any, **kwargs: Any) -> Any:
        if times is None or len(done) < times:
            done.append(True)
            real_write(self, {"_id": session_id}, {**change, "$inc": {"version": 1}})
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(type(sessions), "find_one_and_update", other_writer_first)


# --- If-Match ------------------------------------------------------------------------------


def test_concurrent_patches_with_one_etag_yield_one_200_and_412s(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a session at version 1, and 8 clients that all read ETag "1"
    session = create(alice)
    path = f"/sessions/{session['id']}"

    # WHEN they all PATCH at once with If-Match: "1"
    def patch(index: int) -> int:
        reply = api(
            "PATCH", path, caller=alice, body={"name": f"w{index}"}, headers={"If-Match": '"1"'}
        )
        return reply.status

    statuses = Counter(in_threads(8, patch))

    # THEN exactly one wins, the others are told their ETag is stale, and one write happened
    assert statuses == {200: 1, 412: 7}
    document = stored(database["sessions"], session["id"])
    assert document["version"] == 2


def test_a_writer_that_loses_the_race_is_told_the_current_etag_too(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN another writer changes the session between this PATCH's read and its write
    session = create(alice)
    sessions = database["sessions"]
    another_writer_before_each_write(
        monkeypatch, sessions, session["id"], {"$set": {"name": "theirs"}}
    )
    # WHEN the PATCH carries the tag it read
    reply = api(
        "PATCH",
        f"/sessions/{session['id']}",
        caller=alice,
        body={"name": "mine"},
        headers={"If-Match": '"1"'},
    )
    monkeypatch.undo()
    # THEN it is the same 412 as a stale tag seen at once: with the tag to read again
    assert reply.status == 412
    assert reply.body["current_etag"] == '"2"'
    assert stored(sessions, session["id"])["name"] == "theirs"


def test_a_patch_with_if_match_star_that_loses_a_race_applies_on_the_newer_version(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN another writer changes the session once, between this PATCH's read and its write
    session = create(alice)
    sessions = database["sessions"]
    another_writer_before_each_write(
        monkeypatch, sessions, session["id"], {"$set": {"node_id": "n"}}, times=1
    )
    # WHEN the PATCH carries If-Match: * ("any current version", RFC 9110 section 13.1.1)
    path, star = f"/sessions/{session['id']}", {"If-Match": "*"}
    reply = api("PATCH", path, caller=alice, body={"name": "mine"}, headers=star)
    monkeypatch.undo()
    # THEN the condition still holds (the session exists), so it applies on top, as DELETE with
    # If-Match: * does: not a 412 whose fresh tag would match "*" all the same
    assert reply.status == 200, reply.body
    assert reply.headers["etag"] == '"3"'
    document = stored(sessions, session["id"])
    assert (document["name"], document["node_id"], document["version"]) == ("mine", "n", 3)


def test_a_patch_without_if_match_that_keeps_losing_the_race_is_a_409_after_three_tries(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN another writer changes the session between every read and write of this PATCH
    session = create(alice)
    sessions = database["sessions"]
    another_writer_before_each_write(monkeypatch, sessions, session["id"], {})
    # WHEN the PATCH carries no If-Match (it re-reads and retries on its own)
    reply = api("PATCH", f"/sessions/{session['id']}", caller=alice, body={"name": "mine"})
    monkeypatch.undo()
    # THEN after three tries it gives up with a precise 409, not a 500, and wrote nothing
    assert reply.status == 409, reply.body
    assert reply.body["detail"] == "the session is being changed by others; retry"
    assert reply.headers["content-type"] == "application/problem+json"
    document = stored(sessions, session["id"])
    assert (document["name"], document["version"]) == ("s", 1 + 3)


def test_stale_if_match_is_412_and_writes_nothing(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    session = create(alice)
    path = f"/sessions/{session['id']}"
    api("PATCH", path, caller=alice, body={"name": "v2"})
    reply = api("PATCH", path, caller=alice, body={"name": "late"}, headers={"If-Match": '"1"'})
    assert reply.status == 412
    assert reply.body["current_etag"] == '"2"'
    assert stored(database["sessions"], session["id"])["name"] == "v2"


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        # a matching tag (alone, in a list, or the wildcard) applies the change
        ('"1"', 200),
        ('"7", "1"', 200),
        ("*", 200),
        # weak or foreign tags never match
        ('W/"1"', 412),
        ('"x1"', 412),
        # strong comparison is character by character: another spelling of 1 is another tag
        ('"01"', 412),
        ('"001"', 412),
        ('"+1"', 412),
        ('" 1"', 412),
        # a malformed header is the client's error
        ("1", 400),
        ('"1', 400),
        ('"1" "2"', 400),
    ],
)
def test_if_match_on_a_version_1_session(alice: User, if_match: str, status: int) -> None:
    session = create(alice)
    reply = api(
        "PATCH",
        f"/sessions/{session['id']}",
        caller=alice,
        body={"name": "n"},
        headers={"If-Match": if_match},
    )
    assert reply.status == status
    if status == 200:
        assert reply.headers["etag"] == '"2"'


# DELETE evaluates If-Match too: an origin server MUST evaluate the preconditions it receives
# before performing the method (RFC 9110 section 13.2.1).


def test_delete_with_a_stale_tag_is_412_and_ends_nothing(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a session that changed (version 2) since the client read it at version 1
    session_id = create(alice)["id"]
    path = f"/sessions/{session_id}"
    assert api("PATCH", path, caller=alice, body={"name": "renamed"}).status == 200
    # WHEN the client ends it on the condition that it is still what it read
    reply = api("DELETE", path, caller=alice, headers={"If-Match": '"1"'})
    # THEN the condition fails: 412 with the current tag, and the session goes on
    assert reply.status == 412, reply.body
    assert reply.body["current_etag"] == '"2"'
    assert stored(database["sessions"], session_id)["status"] == "pending"


@pytest.mark.parametrize("tag", ['"2"', "*", '"7", "2"'])
def test_delete_with_a_matching_tag_ends_the_session(
    alice: User, database: Database[dict[str, Any]], tag: str
) -> None:
    session_id = create(alice)["id"]
    path = f"/sessions/{session_id}"
    assert api("PATCH", path, caller=alice, body={"name": "renamed"}).status == 200
    assert api("DELETE", path, caller=alice, headers={"If-Match": tag}).status == 204
    assert stored(database["sessions"], session_id)["status"] == "ended"
    # AND ending it is one more version: a client's next read gets the next tag
    assert api("GET", path, caller=alice).headers["etag"] == '"3"'


def test_delete_of_an_ended_session_stays_204_whatever_the_tag(alice: User) -> None:
    # GIVEN a session already ended (the end the client asks for is in place: RFC 9110 13.1.1
    # lets the server answer 2xx when the requested change has already been made)
    session_id = create(alice)["id"]
    path = f"/sessions/{session_id}"
    assert api("DELETE", path, caller=alice).status == 204
    assert api("DELETE", path, caller=alice, headers={"If-Match": '"1"'}).status == 204


def test_delete_with_a_malformed_if_match_is_400(alice: User) -> None:
    session_id = create(alice)["id"]
    reply = api("DELETE", f"/sessions/{session_id}", caller=alice, headers={"If-Match": "1"})
    assert reply.status == 400, reply.body


def test_delete_with_a_tag_of_someone_elses_session_is_404(alice: User, bob: User) -> None:
    session_id = create(alice)["id"]
    reply = api("DELETE", f"/sessions/{session_id}", caller=bob, headers={"If-Match": "*"})
    assert reply.status == 404


def test_concurrent_unconditional_patches_all_apply_in_turn(alice: User) -> None:
    session = create(alice)
    path = f"/sessions/{session['id']}"
    statuses = in_threads(
        4, lambda i: api("PATCH", path, caller=alice, body={"metadata": {"w": i}}).status
    )
    # Without If-Match a lost race is retried internally; bounded, so 409 is the worst case.
    assert set(statuses) <= {200, 409}
    assert statuses.count(200) >= 1
    assert api("GET", path, caller=alice).body["version"] == 1 + statuses.count(200)


# --- Idempotency-Key -----------------------------------------------------------------------


def test_idempotent_post_retried_five_times_creates_one_session(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    body = {"name": "once", "metadata": {"k": 1}}
    headers = {"Idempotency-Key": "create-once-1"}
    replies = [api("POST", "/sessions", caller=alice, body=body, headers=headers) for _ in range(5)]
    assert {reply.status for reply in replies} == {201}
    assert len({reply.body["id"] for reply in replies}) == 1
    assert replies[0].headers.get("idempotent-replayed") is None
    assert all(reply.headers["idempotent-replayed"] == "true" for reply in replies[1:])
    assert all(reply.headers["location"] == replies[0].headers["location"] for reply in replies)
    assert database["sessions"].count_documents({"owner_id": alice.id}) == 1


def test_a_session_created_with_an_idempotency_key_is_found_at_its_location(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a session created with an Idempotency-Key (its id derived from the key)
    created = api(
        "POST", "/sessions", caller=alice, body={"name": "k"}, headers={"Idempotency-Key": "loc"}
    )
    assert created.status == 201
    location = created.headers["location"]
    # WHEN the client follows the Location, changes the session and ends it THEN each works
    assert api("GET", location, caller=alice).body["id"] == created.body["id"]
    assert api("PATCH", location, caller=alice, body={"name": "k2"}).status == 200
    assert api("DELETE", location, caller=alice).status == 204
    assert stored(database["sessions"], created.body["id"])["status"] == "ended"


def test_concurrent_retries_with_one_key_create_one_session(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    headers = {"Idempotency-Key": "burst"}
    replies = in_threads(
        6, lambda _: api("POST", "/sessions", caller=alice, body={"name": "b"}, headers=headers)
    )
    assert [reply.status for reply in replies] == [201] * 6
    assert len({reply.body["id"] for reply in replies}) == 1
    assert database["sessions"].count_documents({"owner_id": alice.id}) == 1


def test_a_retry_while_the_first_request_still_runs_is_a_documented_409_with_retry_after(
    alice: User, redis_client: redis.Redis, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a POST with this key still running (its claim in Redis, as the store writes it)
    key = "still-running"
    name = f"{idempotency_prefix()}sessions:{alice.id}:{hashlib.sha256(key.encode()).hexdigest()}"
    request = fingerprint(SessionCreate(name="a").model_dump(mode="json"))
    claim = {"state": "running", "fp": request, "owner": "x"}
    redis_client.set(name, json.dumps(claim), ex=30)
    # WHEN the client retries it: the function waits 5 s for the first answer, then gives up
    reply = api(
        "POST", "/sessions", caller=alice, body={"name": "a"}, headers={"Idempotency-Key": key}
    )
    # THEN a 409 that says when to come back, nothing created, and the document declares the
    # header for that answer, as always sent
    assert reply.status == 409, reply.body
    assert reply.headers["retry-after"] == "1"
    assert database["sessions"].count_documents({}) == 0
    assert_documented(reply, "POST", "/sessions", "Retry-After")
    assert documented_headers("POST", "/sessions", 409)["Retry-After"] is True


def test_same_key_with_a_different_body_is_422(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert api("POST", "/sessions", caller=alice, body={"name": "a"}, headers=headers).status == 201
    reply = api("POST", "/sessions", caller=alice, body={"name": "b"}, headers=headers)
    assert reply.status == 422
    assert "Idempotency-Key" in reply.body["detail"]
    assert database["sessions"].count_documents({}) == 1


def test_keys_are_per_caller(alice: User, bob: User) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    mine = api("POST", "/sessions", caller=alice, body={"name": "a"}, headers=headers)
    theirs = api("POST", "/sessions", caller=bob, body={"name": "a"}, headers=headers)
    assert theirs.status == 201
    assert theirs.body["id"] != mine.body["id"]
    assert theirs.body["owner_id"] == bob.id


def test_keys_expire(alice: User, redis_client: redis.Redis) -> None:
    api("POST", "/sessions", caller=alice, body={"name": "a"}, headers={"Idempotency-Key": "ttl"})
    (name,) = redis_client.keys(idempotency_prefix() + "*")
    assert 23 * 3600 < redis_client.ttl(name) <= 24 * 3600
    assert json.loads(redis_client.get(name) or b"{}")["state"] == "done"


@pytest.mark.parametrize("key", ["", "has space", "é", "k" * 256])
def test_malformed_keys_are_422(
    alice: User, database: Database[dict[str, Any]], redis_client: redis.Redis, key: str
) -> None:
    reply = api(
        "POST", "/sessions", caller=alice, body={"name": "a"}, headers={"Idempotency-Key": key}
    )
    # THEN a 422 naming the header (FastAPI's for a key over 255 characters, the idempotency
    # store's for the others), and nothing created nor claimed
    assert reply.status == 422
    assert [error["loc"] for error in reply.body["errors"]] == [["header", "Idempotency-Key"]]
    assert database["sessions"].count_documents({}) == 0
    assert redis_client.keys(idempotency_prefix() + "*") == []


# --- pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["-created_at", "created_at"])
def test_walking_250_sessions_while_others_are_inserted_has_no_duplicates_or_gaps(
    alice: User, database: Database[dict[str, Any]], sort: str
) -> None:
    # GIVEN 250 sessions, many sharing a creation millisecond (ties are broken by id)
    repository = SessionRepository(database)
    existing = {repository.create(alice.id, SessionCreate(name=f"s{i}"))["_id"] for i in range(250)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    # WHEN the client walks the list while 5 new sessions are created after every page
    while True:
        query = f"limit=37&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
        reply = api("GET", "/sessions", caller=alice, query=query)
        assert reply.status == 200
        seen += [item["id"] for item in reply.body["items"]]
        cursor = reply.body["next_cursor"]
        pages += 1
        for _ in range(5):
            create(alice, name="late")
        if cursor is None or pages > 30:
            break
    # THEN every session that existed appears exactly once
    assert len(seen) == len(set(seen))
    assert existing <= set(seen)
    assert pages < 30


def test_cursor_is_bound_to_its_query(alice: User) -> None:
    for _ in range(3):
        create(alice)
    cursor = api("GET", "/sessions", caller=alice, query="limit=1").body["next_cursor"]
    assert api("GET", "/sessions", caller=alice, query=f"limit=1&cursor={cursor}").status == 200
    other = api("GET", "/sessions", caller=alice, query=f"limit=1&status=ended&cursor={cursor}")
    assert other.status == 422
    assert "cursor" in other.body["detail"]


def test_a_cursor_is_refused_by_another_user_another_owner_and_the_other_sort(
    alice: User, bob: User, admin: User
) -> None:
    # GIVEN a cursor alice got walking her own sessions, newest first
    for _ in range(3):
        create(alice)
    cursor = api("GET", "/sessions", caller=alice, query="limit=1").body["next_cursor"]
    # WHEN bob replays it, an admin replays it for another owner, or alice flips the sort
    replies = [
        api("GET", "/sessions", caller=bob, query=f"limit=1&cursor={cursor}"),
        api("GET", "/sessions", caller=admin, query=f"owner_id={bob.id}&cursor={cursor}"),
        api("GET", "/sessions", caller=alice, query=f"sort=created_at&cursor={cursor}"),
    ]
    # THEN each is the precise 422 naming the cursor, never a page
    for reply in replies:
        assert reply.status == 422, reply.body
        assert reply.body["detail"] == (
            "cursor belongs to a different query (filters or sort changed)"
        )
        assert reply.body["errors"][0]["loc"] == ["query", "cursor"]


def test_walking_the_pages_shows_only_the_callers_sessions(alice: User, bob: User) -> None:
    # GIVEN alice's and bob's sessions, created in turn
    mine: set[str] = set()
    for _ in range(3):
        mine.add(create(alice)["id"])
        create(bob)
    # WHEN alice walks her list one session a page
    seen: list[str] = []
    cursor = ""
    for _ in range(6):
        reply = api("GET", "/sessions", caller=alice, query="limit=1" + cursor)
        assert reply.status == 200
        seen += [item["id"] for item in reply.body["items"]]
        if reply.body["next_cursor"] is None:
            break
        cursor = f"&cursor={reply.body['next_cursor']}"
    # THEN she sees each of hers once, and none of bob's
    assert sorted(seen) == sorted(mine)


def test_a_forged_cursor_pointing_at_another_users_session_pages_only_the_callers_own(
    alice: User, bob: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN bob's session, alice's three, and bob's next one, created a day after hers
    create(bob)
    mine = [create(alice)["id"] for _ in range(3)]
    theirs = create(bob)["id"]
    later = stored(database["sessions"], theirs)["created_at"] + timedelta(days=1)
    database["sessions"].update_one({"_id": theirs}, {"$set": {"created_at": later}})
    # WHEN alice forges a well-formed cursor for her own query that points at bob's session
    position = Position.of(stored(database["sessions"], theirs))
    forged = encode_cursor(position, query_fingerprint({"owner_id": alice.id}, "-created_at"))
    reply = api("GET", "/sessions", caller=alice, query=f"cursor={forged}")
    # THEN she gets a page of her own sessions only (those before that point)
    assert reply.status == 200
    assert {item["owner_id"] for item in reply.body["items"]} == {alice.id}
    assert {item["id"] for item in reply.body["items"]} == set(mine)


@pytest.mark.parametrize(
    "cursor", ["!!!", "bm90IGpzb24", "WzEsMl0", "eyJ0IjotMSwiaSI6IngiLCJxIjoiIn0"]
)
def test_forged_cursors_are_422(alice: User, cursor: str) -> None:
    reply = api("GET", "/sessions", caller=alice, query=f"cursor={cursor}")
    assert reply.status == 422
    with pytest.raises(ValidationFailedError):
        decode_cursor(cursor, "x")


# 9999-12-31T23:59:59.999Z in ms since the epoch, the last moment a datetime can hold
LAST_MS = 253_402_300_799_999


@pytest.mark.parametrize(
    ("created_at_ms", "ident", "status"),
    [
        (0, "0" * 32, 200),
        (LAST_MS, "0" * 32, 200),
        (LAST_MS + 1, "0" * 32, 422),
        (-1, "0" * 32, 422),
        (0, "x", 422),  # not one of our ids
    ],
)
def test_a_cursor_may_name_any_moment_a_date_can_hold_and_no_other(
    alice: User, created_at_ms: int, ident: str, status: int
) -> None:
    # GIVEN one of alice's sessions, and a cursor of her query naming the first moment after
    # the epoch, the last millisecond of year 9999 or just beyond either
    create(alice)
    position = Position(created_at_ms, ident)
    cursor = encode_cursor(position, query_fingerprint({"owner_id": alice.id}, "-created_at"))
    # WHEN she lists with it THEN a date is a page (newest first: hers lies before 9999, after
    # 1970), anything beyond is the 422 naming the cursor, never a 500
    reply = api("GET", "/sessions", caller=alice, query=f"cursor={cursor}")
    assert reply.status == status, reply.body
    if status == 200:
        assert len(reply.body["items"]) == (created_at_ms == LAST_MS)
    else:
        assert reply.body["errors"][0]["loc"] == ["query", "cursor"]


def test_a_list_without_a_limit_pages_by_the_documented_50(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN 51 sessions
    repository = SessionRepository(database)
    for index in range(51):
        repository.create(alice.id, SessionCreate(name=f"s{index}"))
    # WHEN alice lists them without a limit THEN she gets the documented default of 50 and a
    # cursor to the last one
    first = api("GET", "/sessions", caller=alice)
    assert len(first.body["items"]) == 50
    rest = api("GET", "/sessions", caller=alice, query=f"cursor={first.body['next_cursor']}")
    assert (len(rest.body["items"]), rest.body["next_cursor"]) == (1, None)
    # AND a page that holds exactly all of them is the last: no cursor to an empty page
    whole = api("GET", "/sessions", caller=alice, query="limit=51")
    assert (len(whole.body["items"]), whole.body["next_cursor"]) == (51, None)
