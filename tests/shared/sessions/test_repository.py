"""The sessions repository at its driver boundary: outages, lost races, If-Match."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from lucid.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
)
from lucid.identity import CallerIdentity, Role
from lucid.sessions.preconditions import parse_if_match
from lucid.sessions.repository import SessionRepository
from lucid.sessions.schemas import SessionCreate, SessionPatch
from lucid.store import fast_reads
from lucid.users.repository import UserRepository
from tests.utils.datastore import stored

Db = Database[dict[str, Any]]


def _owner(db: Db) -> CallerIdentity:
    """A caller whose account exists (a session for a closed account is refused)."""
    db["users"].insert_one({"_id": "0" * 32, "role": "user"})
    return CallerIdentity("0" * 32, "T", Role.USER, "authenticated", "j")


def test_repository_translates_an_outage_at_its_boundary(dead_db: Db) -> None:
    caller = CallerIdentity("0" * 32, "T", Role.USER, "authenticated", "j")
    repository = SessionRepository(dead_db)
    with pytest.raises(ServiceUnavailableError, match="sessions store"):
        repository.create(caller.user_id, SessionCreate(name="x"))
    with pytest.raises(ServiceUnavailableError):
        repository.end(caller, "1" * 32)
    # a PATCH with a tag is written at once, without a read first: its write is the 503
    with pytest.raises(ServiceUnavailableError, match="sessions store"):
        repository.update(caller, "1" * 32, SessionPatch(name="y"), parse_if_match('"1"'))
    with pytest.raises(ServiceUnavailableError):
        UserRepository(dead_db).get("1" * 32)


def test_patch_of_a_session_that_vanishes_mid_update_is_404(db: Db) -> None:
    caller = _owner(db)
    repository = SessionRepository(db)
    session = repository.create(caller.user_id, SessionCreate(name="x"))
    db["sessions"].delete_one({"_id": session["_id"]})
    with pytest.raises(NotFoundError):
        repository.update(caller, session["_id"], SessionPatch(name="y"), parse_if_match('"1"'))


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
    # The PATCH decided on the session as read: `update` reaches it when its write at once
    # matched nothing (its check and write are one operation, which nothing can overtake).
    caller = _owner(db)
    session = SessionRepository(db).create(caller.user_id, SessionCreate(name="x"))
    with pytest.raises(PreconditionFailedError):
        OvertakenRepository(db).update_as_read(
            caller, session["_id"], SessionPatch(name="y"), parse_if_match('"1"')
        )
    assert stored(db["sessions"], session["_id"])["name"] == "x"


def test_without_if_match_an_ever_overtaken_write_gives_up_with_409(db: Db) -> None:
    caller = _owner(db)
    session = SessionRepository(db).create(caller.user_id, SessionCreate(name="x"))
    with pytest.raises(ConflictError):
        OvertakenRepository(db).update(caller, session["_id"], SessionPatch(name="y"), None)
    assert stored(db["sessions"], session["_id"])["name"] == "x"


class Commands(monitoring.CommandListener):
    """The names of the commands a client sends, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def watched(db: Db) -> Iterator[tuple[Db, Commands]]:
    """`db` through a client whose every command is seen: its reads by id go through pymongo
    (`lucid.store.fast_reads` publishes no command events)."""
    commands = Commands()
    host, port = db.client.address or ("", 0)
    client: MongoClient[dict[str, Any]] = MongoClient(
        host, port, tz_aware=True, timeoutMS=30_000, event_listeners=[commands]
    )
    fast_reads.configure(client, enabled=False)
    yield client[db.name], commands
    client.close()


@pytest.mark.parametrize(
    ("body", "if_match", "commands", "version"),
    [
        # a change with a tag that is current: one write, no read
        ({"name": "y"}, '"1"', ["findAndModify"], 2),
        ({"status": "active"}, '"1"', ["findAndModify"], 2),
        ({"name": "y", "status": "ended"}, '"7", "1"', ["findAndModify"], 2),
        # the write matched nothing (nothing to change, a stale tag, a forbidden move): the
        # session is read to say why, as before
        ({"name": "x"}, '"1"', ["findAndModify", "find"], 1),
        ({"name": "y"}, '"2"', ["findAndModify", "find"], 1),
        ({"status": "pending"}, '"1"', ["find"], 1),
        # what one filter cannot decide: read, then written on the version read, as before
        ({"metadata": {"a": 1}}, '"1"', ["find", "findAndModify"], 2),
        ({"name": "y"}, "*", ["find", "findAndModify"], 2),
        ({"name": "y"}, None, ["find", "findAndModify"], 2),
    ],
)
def test_a_patch_with_a_current_tag_is_one_command_to_mongodb(
    watched: tuple[Db, Commands],
    body: dict[str, Any],
    if_match: str | None,
    commands: list[str],
    version: int,
) -> None:
    # GIVEN a pending session at version 1
    db, seen = watched
    caller = _owner(db)
    repository = SessionRepository(db)
    session = repository.create(caller.user_id, SessionCreate(name="x"))
    seen.names.clear()
    # WHEN it is PATCHed
    patch = SessionPatch.model_validate(body)
    with suppress(PreconditionFailedError):
        repository.update(caller, session["_id"], patch, parse_if_match(if_match))
    # THEN MongoDB got these commands, and the version is what the change made it
    assert seen.names == commands
    assert stored(db["sessions"], session["_id"])["version"] == version


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
