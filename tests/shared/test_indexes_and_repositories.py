"""Indexes, the sessions repository at its driver boundary, and the last-admin rule.

MongoDB is mongomock (in memory) except where a real pymongo client is pointed at a closed port
to stand for "MongoDB is down".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mongomock
import pytest
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from lucid.config import Settings
from lucid.deps import CallerIdentity
from lucid.embedded import free_port
from lucid.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
)
from lucid.indexes import ensure_indexes, ensure_indexes_once
from lucid.mongo import build_database
from lucid.sessions.preconditions import parse_if_match
from lucid.sessions.repository import SessionRepository
from lucid.sessions.schemas import SessionCreate, SessionPatch
from lucid.users_admin import UserDirectory
from tests.utils.datastore import add_user, stored

Db = Database[dict[str, Any]]


@pytest.fixture
def db() -> Db:
    return mongomock.MongoClient(tz_aware=True)["lucid"]


@pytest.fixture
def dead_db() -> Iterator[Db]:
    database = build_database(
        Settings(MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}", MONGODB_TIMEOUT_MS=100)
    )
    yield database
    database.client.close()


def test_indexes_are_created_idempotently_and_enforce_unique_addresses(db: Db) -> None:
    first = ensure_indexes(db)
    second = ensure_indexes(db)
    assert first == second
    assert "address_unique" in db["users"].index_information()
    assert {"owner_created", "status"} <= set(db["sessions"].index_information())
    assert "expires_ttl" in db["tokens"].index_information()
    db["users"].insert_one({"_id": "a", "address": "T1"})
    with pytest.raises(DuplicateKeyError):
        db["users"].insert_one({"_id": "b", "address": "T1"})


def test_ensure_once_retries_a_database_that_was_down(dead_db: Db, db: Db) -> None:
    with pytest.raises(ServiceUnavailableError):
        ensure_indexes_once(dead_db)
    ensure_indexes_once(db)
    db["sessions"].drop_indexes()
    ensure_indexes_once(db)  # remembered: no second round trip
    assert "owner_created" not in db["sessions"].index_information()


def test_repository_translates_an_outage_at_its_boundary(dead_db: Db) -> None:
    caller = CallerIdentity("0" * 32, "T", "user", "authenticated", "j")
    repository = SessionRepository(dead_db)
    with pytest.raises(ServiceUnavailableError, match="sessions store"):
        repository.create(caller.user_id, SessionCreate(name="x"))
    with pytest.raises(ServiceUnavailableError):
        repository.end(caller, "1" * 32)
    with pytest.raises(ServiceUnavailableError):
        UserDirectory(dead_db).get("1" * 32)


def test_patch_of_a_session_that_vanishes_mid_update_is_404(db: Db) -> None:
    caller = CallerIdentity("0" * 32, "T", "user", "authenticated", "j")
    repository = SessionRepository(db)
    session = repository.create(caller.user_id, SessionCreate(name="x"))
    db["sessions"].delete_one({"_id": session["_id"]})
    with pytest.raises(NotFoundError):
        repository.update(caller, session["_id"], SessionPatch(name="y"), parse_if_match('"1"'))


class RacingDirectory(UserDirectory):
    """A directory whose pre-check is overtaken: another admin's demotion lands right after it."""

    def __init__(self, database: Db, other_admin_id: str) -> None:
        super().__init__(database)
        self._database = database
        self._other = other_admin_id
        self._overtaken = False

    def _admin_count(self) -> int:
        count = super()._admin_count()
        if not self._overtaken:
            self._overtaken = True
            self._database["users"].update_one({"_id": self._other}, {"$set": {"role": "user"}})
        return count


def test_last_admin_cannot_be_demoted(db: Db) -> None:
    directory = UserDirectory(db)
    first, second = add_user(db, role="admin"), add_user(db, role="admin")
    assert directory.set_role(first.id, "user")["role"] == "user"
    with pytest.raises(ConflictError):
        directory.set_role(second.id, "user")
    assert directory.set_role(first.id, "admin")["role"] == "admin"


def test_a_demotion_that_loses_a_race_is_undone(db: Db) -> None:
    # GIVEN two admins, and another request demoting the first right after our check saw two
    first, second = add_user(db, role="admin"), add_user(db, role="admin")
    directory = RacingDirectory(db, other_admin_id=first.id)
    # WHEN we demote the second, THEN ours is undone and refused: an admin remains
    with pytest.raises(ConflictError):
        directory.demote(second.id)
    assert [u["_id"] for u in db["users"].find({"role": "admin"})] == [second.id]


class OvertakenRepository(SessionRepository):
    """A repository whose read is overtaken: another writer bumps the version right after it."""

    def __init__(self, database: Db) -> None:
        super().__init__(database)
        self._database = database

    def get(self, caller: CallerIdentity, session_id: str) -> dict[str, Any]:
        document = super().get(caller, session_id)
        self._database["sessions"].update_one({"_id": session_id}, {"$inc": {"version": 1}})
        return document


def test_a_write_overtaken_after_its_if_match_check_is_412_and_writes_nothing(db: Db) -> None:
    caller = CallerIdentity("0" * 32, "T", "user", "authenticated", "j")
    session = SessionRepository(db).create(caller.user_id, SessionCreate(name="x"))
    with pytest.raises(PreconditionFailedError):
        OvertakenRepository(db).update(
            caller, session["_id"], SessionPatch(name="y"), parse_if_match('"1"')
        )
    assert stored(db["sessions"], session["_id"])["name"] == "x"


def test_without_if_match_an_ever_overtaken_write_gives_up_with_409(db: Db) -> None:
    caller = CallerIdentity("0" * 32, "T", "user", "authenticated", "j")
    session = SessionRepository(db).create(caller.user_id, SessionCreate(name="x"))
    with pytest.raises(ConflictError):
        OvertakenRepository(db).update(caller, session["_id"], SessionPatch(name="y"), None)
    assert stored(db["sessions"], session["_id"])["name"] == "x"


@pytest.mark.parametrize(
    ("header", "allows_1", "allows_2"),
    [('"1"', True, False), ('"1", "2"', True, True), ("*", True, True), ('W/"1"', False, False)],
)
def test_if_match_parsing(header: str, allows_1: bool, allows_2: bool) -> None:
    parsed = parse_if_match(header)
    assert parsed is not None
    assert (parsed.allows(1), parsed.allows(2)) == (allows_1, allows_2)


@pytest.mark.parametrize("header", ['"1"' * 200, "1", '"1" "2"'])
def test_malformed_if_match_is_a_bad_request(header: str) -> None:
    with pytest.raises(BadRequestError):
        parse_if_match(header)


def test_deleting_a_malformed_user_id_deletes_nothing(db: Db) -> None:
    add_user(db)
    assert UserDirectory(db).delete("nope") is False
    assert db["users"].count_documents({}) == 1


def test_each_fresh_database_gets_its_indexes_even_when_it_looks_like_another(db: Db) -> None:
    # GIVEN a prepared database, and another in-memory one with the same address and name
    ensure_indexes_once(db)
    twin: Db = mongomock.MongoClient(tz_aware=True)["lucid"]
    assert twin == db
    # WHEN it is first used THEN it gets its own indexes
    ensure_indexes_once(twin)
    assert "address_unique" in twin["users"].index_information()
