"""The signed-in reads by id (`lucid.store.fast_reads`) through the users and sessions functions:
what a caller gets when MongoDB refuses the read is what pymongo's read gave, words and log line
included."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database

from lucid.config import Settings
from lucid.store.documents import new_id
from lucid.store.mongo import build_database
from lucid_edge.local import start_mongo_server
from lucid_edge.local.mongo_core import CommandError
from tests.utils.datastore import User, call, database_for
from tests.utils.logs import logged_lines


def _refused_reads(uri: str, alice: User, fast: bool) -> tuple[list[Any], list[Any]]:
    # GET /users/me and GET /sessions/{id}, through a client of `uri` built as the process's is.
    database = build_database(Settings(MONGODB_URI=uri, MONGODB_FAST_READS=fast))
    try:
        with logged_lines() as lines, database_for("users", "sessions", database=database):
            replies = [
                call("users", "GET", "/users/me", caller=alice),
                call("sessions", "GET", f"/sessions/{new_id()}", caller=alice),
            ]
    finally:
        database.client.close()
    return replies, lines


def test_a_refused_read_by_id_is_the_same_503_and_log_line_with_the_fast_path_on_or_off(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a server whose user's roles do not allow `find`: every find is answered 13
    # Unauthorized as mongod words it (src/mongo/db/commands.cpp: "not authorized on <db> to
    # execute command { find: ... }"), on the fast path's connection as on pymongo's
    # (the revocation check answered from Redis's complete copy, as on a warm function: the
    # reads by id are then the first MongoDB reads of each request)
    assert call("users", "GET", "/users/me", caller=alice).status == 200
    answers = {}
    with start_mongo_server() as server:
        backend = server._server.backend
        answer = backend.run

        def without_find(command: dict[str, Any], database: str, connection: int) -> Any:
            if next(iter(command)) != "find":
                return answer(command, database, connection)
            refused = (
                f"not authorized on {database} to execute command {{ find: {command['find']!r} }}"
            )
            return CommandError(13, refused).reply()

        monkeypatch.setattr(backend, "run", without_find)
        for fast in (True, False):
            # WHEN the signed-in user reads their profile and a session by id
            replies, lines = _refused_reads(server.uri, alice, fast)
            answers[fast] = (
                [(reply.status, reply.body["detail"], reply.body["type"]) for reply in replies],
                [line["message"] for line in lines if line["level"] == "ERROR"],
            )
    # THEN each is the store's 503 saying the store refused the operation, with one ERROR line
    # per client naming the refused command, exactly as when pymongo made the read itself
    assert answers[True] == answers[False]
    statuses, errors = answers[True]
    assert [status for status, _, _ in statuses] == [503, 503]
    assert [detail for _, detail, _ in statuses] == [
        "the users store refused the operation",
        "the sessions store refused the operation",
    ]
    assert errors == [
        "MongoDB refused the operation (not authorized on lucid: code 13 Unauthorized), first "
        "at the users store's request: check that MONGODB_URI names a "
        "user, and that the user's roles allow the command (readWrite on the gateway's database)"
    ]
