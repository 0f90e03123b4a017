"""PATCH /sessions/{id} decided at once answers exactly as PATCH decided on the session as read.

`SessionRepository.update` tries a PATCH with If-Match naming versions as one conditional
`find_one_and_update` first, and reads the session only when that matched nothing;
`update_as_read` is the PATCH of before (read, check, decide, write on the version read), kept
callable. Each case below runs through the sessions function's handler twice, on two databases
holding the same session, with the repository's clock stopped: once as deployed, once with
`update` replaced by `update_as_read`. The answers (status, ETag, Content-Type, the body as
sent: key order and number types included) and the stored documents (the same, as pymongo
decodes them) must be the same, and what the table says.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple

import pytest
import redis
from pymongo.database import Database

from lucid.sessions import repository
from lucid.sessions.repository import SessionRepository
from lucid_edge.local import in_memory_database
from tests.utils.datastore import User, atomic_writes, call, database_for, in_threads, stored

api = partial(call, "sessions")

NOW = datetime(2026, 12, 5, 4, 30, 0, 123000, tzinfo=UTC)
CREATED = datetime(2026, 12, 1, 9, 0, 0, 1000, tzinfo=UTC)
STARTED = datetime(2026, 12, 2, 9, 0, 0, 2000, tzinfo=UTC)
ENDED = datetime(2026, 12, 3, 9, 0, 0, 3000, tzinfo=UTC)
OWNER = User(id="a" * 32, address="T" + "a" * 32)
OTHER = User(id="b" * 32, address="T" + "b" * 32)
ADMIN = User(id="c" * 32, address="T" + "c" * 32, role="admin")
SESSION = "5" * 32
# Key order, a boolean beside a number, and an integer are what Python's `!=` and MongoDB's
# `$ne` see differently: an equal PATCH of them must change nothing, whatever the path.
METADATA = {"b": 1, "a": {"y": True, "x": 2}}

STATES: dict[str, dict[str, Any]] = {
    "pending": {"status": "pending", "started_at": None, "ended_at": None, "version": 3},
    "active": {"status": "active", "started_at": STARTED, "ended_at": None, "version": 3},
    "ended": {"status": "ended", "started_at": STARTED, "ended_at": ENDED, "version": 3},
}


def _seed(database: Database[dict[str, Any]], state: str) -> None:
    for user in (OWNER, OTHER, ADMIN):
        database["users"].insert_one(
            {"_id": user.id, "address": user.address, "role": user.role, "display_name": None,
             "email": None, "preferences": {}, "created_at": CREATED, "updated_at": CREATED}
        )  # fmt: skip
    database["sessions"].insert_one(
        {"_id": SESSION, "owner_id": OWNER.id, "name": "render", "node_id": "node-7",
         "status": "", "metadata": METADATA, "created_at": CREATED, "updated_at": CREATED,
         "started_at": None, "ended_at": None, "version": 0, **STATES[state]}
    )  # fmt: skip


class Case(NamedTuple):
    state: str
    body: dict[str, Any]
    if_match: str | None
    status: int
    written: bool  # the version went up
    caller: User = OWNER
    session_id: str = SESSION


CASES = {
    # what the PATCH of the bench and of most clients is: a rename with the tag last seen
    "rename": Case("pending", {"name": "renamed"}, '"3"', 200, True),
    "rename, no-op": Case("pending", {"name": "render"}, '"3"', 200, False),
    "rename, no-op, stale tag": Case("pending", {"name": "render"}, '"2"', 412, False),
    "rename, stale tag": Case("pending", {"name": "renamed"}, '"2"', 412, False),
    "rename, two tags, one current": Case("pending", {"name": "renamed"}, '"9", "3"', 200, True),
    "rename, two tags, none current": Case("pending", {"name": "renamed"}, '"1", "2"', 412, False),
    "rename, weak tag": Case("pending", {"name": "renamed"}, 'W/"3"', 412, False),
    "rename, *": Case("pending", {"name": "renamed"}, "*", 200, True),
    "rename, no tag": Case("pending", {"name": "renamed"}, None, 200, True),
    "rename, no-op, no tag": Case("pending", {"name": "render"}, None, 200, False),
    "rename, active": Case("active", {"name": "renamed"}, '"3"', 200, True),
    "rename, ended": Case("ended", {"name": "renamed"}, '"3"', 409, False),
    "rename, no-op, ended": Case("ended", {"name": "render"}, '"3"', 409, False),
    "rename, ended, stale tag": Case("ended", {"name": "renamed"}, '"2"', 412, False),
    "nothing": Case("pending", {}, '"3"', 200, False),
    "nothing, ended": Case("ended", {}, '"3"', 200, False),
    "nothing, stale tag": Case("pending", {}, '"2"', 412, False),
    "metadata, same": Case("pending", {"metadata": METADATA}, '"3"', 200, False),
    "metadata, keys in another order": Case(
        "pending", {"metadata": {"a": {"x": 2, "y": True}, "b": 1}}, '"3"', 200, False
    ),
    "metadata, true for 1, 2.0 for 2": Case(
        "pending", {"metadata": {"b": True, "a": {"y": 1, "x": 2.0}}}, '"3"', 200, False
    ),
    "metadata, changed": Case("pending", {"metadata": {"b": 2}}, '"3"', 200, True),
    "metadata, changed, stale tag": Case("pending", {"metadata": {"b": 2}}, '"2"', 412, False),
    "pending to active": Case("pending", {"status": "active"}, '"3"', 200, True),
    "pending to ended": Case("pending", {"status": "ended"}, '"3"', 200, True),
    "pending to pending": Case("pending", {"status": "pending"}, '"3"', 200, False),
    "active to ended": Case("active", {"status": "ended"}, '"3"', 200, True),
    "active to active": Case("active", {"status": "active"}, '"3"', 200, False),
    "active to pending": Case("active", {"status": "pending"}, '"3"', 409, False),
    "ended to ended": Case("ended", {"status": "ended"}, '"3"', 409, False),
    "ended to active": Case("ended", {"status": "active"}, '"3"', 409, False),
    "active to pending, stale tag": Case("active", {"status": "pending"}, '"2"', 412, False),
    "pending to active, stale tag": Case("pending", {"status": "active"}, '"2"', 412, False),
    "pending to active, *": Case("pending", {"status": "active"}, "*", 200, True),
    "pending to active, no tag": Case("pending", {"status": "active"}, None, 200, True),
    "rename and activate": Case(
        "pending", {"name": "renamed", "status": "active"}, '"3"', 200, True
    ),
    "same name and activate": Case(
        "pending", {"name": "render", "status": "active"}, '"3"', 200, True
    ),
    "rename, staying active": Case(
        "active", {"name": "renamed", "status": "active"}, '"3"', 200, True
    ),
    "rename, staying pending": Case(
        "pending", {"name": "renamed", "status": "pending"}, '"3"', 200, True
    ),
    "same name, staying active": Case(
        "active", {"name": "render", "status": "active"}, '"3"', 200, False
    ),
    "rename and go back to pending": Case(
        "active", {"name": "renamed", "status": "pending"}, '"3"', 409, False
    ),
    "rename, metadata and end": Case(
        "active", {"name": "renamed", "metadata": {}, "status": "ended"}, '"3"', 200, True
    ),
    "someone else's session": Case("pending", {"name": "renamed"}, '"3"', 404, False, OTHER),
    "someone else's session, no-op": Case("pending", {"name": "render"}, '"3"', 404, False, OTHER),
    "an admin renames it": Case("pending", {"name": "renamed"}, '"3"', 200, True, ADMIN),
    "an admin ends it": Case("active", {"status": "ended"}, '"3"', 200, True, ADMIN),
    "an admin, stale tag": Case("pending", {"name": "renamed"}, '"2"', 412, False, ADMIN),
    "a missing session": Case("pending", {"name": "renamed"}, '"3"', 404, False, OWNER, "6" * 32),
    "a malformed id": Case("pending", {"name": "renamed"}, '"3"', 404, False, OWNER, "x"),
}


def _answer(case: Case) -> tuple[Any, ...]:
    """The PATCH's answer as a client sees it (body as sent), and the session as stored."""
    database = in_memory_database()
    _seed(database, case.state)
    headers = {} if case.if_match is None else {"If-Match": case.if_match}
    with database_for("users", "sessions", database=database):
        path = f"/sessions/{case.session_id}"
        reply = api("PATCH", path, caller=case.caller, body=case.body, headers=headers)
    kept = {name: reply.headers.get(name) for name in ("etag", "content-type")}
    document = stored(database["sessions"], SESSION)
    return reply.status, kept, json.dumps(reply.body), json.dumps(document, default=str)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_patch_answers_and_stores_what_the_patch_as_read_did(
    case: Case, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "utcnow", lambda: NOW)
    # GIVEN the answer and the stored session of the PATCH as it is deployed
    answer = _answer(case)
    # WHEN the same PATCH of the same session is decided as before, on the session as read
    monkeypatch.setattr(SessionRepository, "update", SessionRepository.update_as_read)
    before = _answer(case)
    # THEN everything is the same, down to the key order and the number types of the body
    assert answer == before
    # AND it is what the case says
    status, headers, body, document = answer
    version = json.loads(document)["version"]
    assert (status, version) == (case.status, 3 + case.written), body
    if status == 200:
        assert headers["etag"] == f'"{version}"'
        updated_at = "2026-12-05T04:30:00.123Z" if case.written else "2026-12-01T09:00:00.001Z"
        assert json.loads(body)["updated_at"] == updated_at
    else:
        assert headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [{"name": "mine"}, {"status": "active"}, {"status": "ended"}, {"name": "n", "status": "ended"}],
)
def test_concurrent_patches_with_one_etag_yield_one_200_whatever_they_change(
    body: dict[str, Any], redis_client: redis.Redis
) -> None:
    # GIVEN a pending session at version 3, and 8 clients that all read ETag "3"
    path, tag = f"/sessions/{SESSION}", {"If-Match": '"3"'}

    def patch(_: int) -> int:
        return api("PATCH", path, caller=OWNER, body=body, headers=tag).status

    with atomic_writes():
        database = in_memory_database()
        _seed(database, "pending")
        with database_for("users", "sessions", database=database):
            # WHEN they all send the same change at once with If-Match: "3"
            statuses = Counter(in_threads(8, patch))
    # THEN one applies it and the others are told their tag is stale: one write
    assert statuses == {200: 1, 412: 7}
    assert stored(database["sessions"], SESSION)["version"] == 4
