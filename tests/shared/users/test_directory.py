"""User administration: the last-admin rule, including a demotion that loses a race."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database

from lucid.errors import ConflictError
from lucid.users.directory import UserDirectory
from tests.utils.datastore import add_user

Db = Database[dict[str, Any]]


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


def test_deleting_a_malformed_user_id_deletes_nothing(db: Db) -> None:
    add_user(db)
    assert UserDirectory(db).delete("nope") is False
    assert db["users"].count_documents({}) == 1
