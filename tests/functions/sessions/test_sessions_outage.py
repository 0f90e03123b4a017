"""MongoDB down: the sessions function answers 503 problem+json and leaves nothing half-written.

"Down" is a real pymongo client pointed at a closed port on 127.0.0.1 (200 ms server selection
timeout); "back" is the in-memory mongomock database the other tests use.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from pymongo.database import Database

from tests.utils.datastore import User, call, database_for, fail_on

api = partial(call, "sessions")


def test_mongodb_down_is_503_problem_and_a_retry_after_it_returns_creates_one_session(
    alice: User, database: Database[dict[str, Any]], dead_database: Database[dict[str, Any]]
) -> None:
    body = {"name": "during outage"}
    headers = {"Idempotency-Key": "outage-1"}
    # GIVEN MongoDB is unreachable
    with database_for("sessions", database=dead_database):
        # WHEN a session is created, read and listed
        created = api("POST", "/sessions", caller=alice, body=body, headers=headers)
        listed = api("GET", "/sessions", caller=alice)
    # THEN each is a 503 problem that names the store, not a 500 or a hang
    for reply in (created, listed):
        assert reply.status == 503
        assert reply.headers["content-type"] == "application/problem+json"
        assert "unavailable" in reply.body["detail"]
    # AND once MongoDB is back, nothing was half-written and the retry succeeds exactly once
    assert database["sessions"].count_documents({}) == 0
    retried = api("POST", "/sessions", caller=alice, body=body, headers=headers)
    assert retried.status == 201
    assert retried.headers.get("idempotent-replayed") is None
    assert database["sessions"].count_documents({}) == 1


def test_mongodb_failing_between_the_insert_and_the_owner_check_leaves_no_session(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN MongoDB takes the session's insert, then fails the owner check that follows
    # (a primary stepping down mid-request: pymongo raises AutoReconnect)
    fail_on(monkeypatch, "users", "find_one")
    # WHEN the session is created
    reply = api("POST", "/sessions", caller=alice, body={"name": "half"})
    # THEN the client is told 503 and no session it was told failed is left behind
    assert reply.status == 503
    assert reply.headers["content-type"] == "application/problem+json"
    monkeypatch.undo()
    assert database["sessions"].count_documents({}) == 0
