"""The one users repository: the document sign-in creates, roles, concurrent first logins, and
the last-admin rule (a demotion or deletion overtaken by another; the races and faults are in
tests/functions/users/test_users_last_admin.py)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from lucid.errors import ConflictError, NotFoundError, ServiceUnavailableError
from lucid.identity import Role
from lucid.store.documents import is_valid_id
from lucid.store.indexes import ensure_indexes
from lucid.store.lease import Held, Lease
from lucid.users.repository import UserRepository
from lucid_edge.local import in_memory_database
from tests.utils.datastore import add_user, atomic_writes

Db = Database[dict[str, Any]]
ADDRESS = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"


def _database() -> Database[dict[str, Any]]:
    database: Database[dict[str, Any]] = in_memory_database()
    ensure_indexes(database)
    return database


def test_first_login_creates_the_documented_document() -> None:
    users = UserRepository(_database())
    user = users.upsert_on_login(ADDRESS, is_admin=False)
    assert is_valid_id(user["_id"])
    assert (user["address"], user["role"]) == (ADDRESS, "user")
    assert user["created_at"] == user["updated_at"] == user["last_login_at"]
    assert users.find_by_id(user["_id"]) == user
    assert users.find_by_address(ADDRESS) == user


def test_unknown_or_malformed_ids_find_nothing() -> None:
    users = UserRepository(_database())
    assert users.find_by_id("0" * 32) is None
    assert users.find_by_id("not-an-id") is None
    assert users.find_by_address(ADDRESS) is None


def test_listed_admin_is_promoted_and_a_promoted_user_stays_admin() -> None:
    database = _database()
    users = UserRepository(database)
    # GIVEN a user an admin promoted through the users API
    user = users.upsert_on_login(ADDRESS, is_admin=False)
    database["users"].update_one({"_id": user["_id"]}, {"$set": {"role": "admin"}})
    # THEN a later login without ADMIN_ADDRESSES keeps the role
    assert users.upsert_on_login(ADDRESS, is_admin=False)["role"] == "admin"
    # AND an address in ADMIN_ADDRESSES is admin from its first login
    listed = users.upsert_on_login("TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1", is_admin=True)
    assert listed["role"] == "admin"


def test_concurrent_first_logins_make_one_user() -> None:
    # GIVEN many first logins of one address at once (writes atomic, as on a MongoDB server)
    users = UserRepository(_database())
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def login() -> None:
        barrier.wait(timeout=10)
        ids.append(users.upsert_on_login(ADDRESS, is_admin=False)["_id"])

    threads = [threading.Thread(target=login) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with atomic_writes():
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    # THEN every login got the same, single user
    assert len(ids) == 8
    assert len(set(ids)) == 1


def test_last_admin_cannot_be_demoted(db: Db) -> None:
    users = UserRepository(db)
    first, second = add_user(db, role="admin"), add_user(db, role="admin")
    assert users.set_role(first.id, Role.USER)["role"] == "user"
    with pytest.raises(ConflictError):
        users.set_role(second.id, Role.USER)
    assert users.set_role(first.id, Role.ADMIN)["role"] == "admin"


class LeaseAfterAnother(Lease):
    """The admins lease, taken just after another request demoted (or deleted) the target:
    the one way the target can change between our read and our holding the lease."""

    def __init__(self, database: Db, removal: Callable[[], object]) -> None:
        super().__init__(database, "admins", busy="busy")
        self._removal = removal

    @contextmanager
    def held(self) -> Iterator[Held]:
        self._removal()
        with super().held() as held:
            yield held


def test_a_demotion_overtaken_by_another_answers_the_user_as_it_is(db: Db) -> None:
    # GIVEN three admins, and another demotion of our target landing before we hold the lease
    target, *_ = (add_user(db, role="admin") for _ in range(3))

    def other() -> None:
        db["users"].update_one({"_id": target.id}, {"$set": {"role": "user"}})

    users = UserRepository(db, admins=LeaseAfterAnother(db, other))
    # THEN ours writes nothing more and answers the demoted user; two admins remain
    assert users.demote(target.id)["role"] == "user"
    assert db["users"].count_documents({"role": "admin"}) == 2
    # AND when the other request deleted it instead, ours is a 404
    gone = add_user(db, role="admin")
    deleting = UserRepository(
        db, admins=LeaseAfterAnother(db, lambda: db["users"].delete_one({"_id": gone.id}))
    )
    with pytest.raises(NotFoundError):
        deleting.demote(gone.id)


class OutlivedLease(Lease):
    """The admins lease, held by a request that took longer than its lease allows a write."""

    @contextmanager
    def held(self) -> Iterator[Held]:
        with super().held() as held:
            yield Held(held.name, held.taken_at, budget=-1.0)


def test_a_holder_that_outlived_its_lease_removes_no_admin(db: Db) -> None:
    # GIVEN two admins, and a request whose lease may have expired before its write
    first, second = add_user(db, role="admin"), add_user(db, role="admin")
    users = UserRepository(db, admins=OutlivedLease(db, "admins", busy="busy"))
    # THEN neither its demotion nor its closure writes: 503, both still admins, lease released
    with pytest.raises(ServiceUnavailableError, match="lease ran out"):
        users.demote(first.id)
    with pytest.raises(ServiceUnavailableError, match="lease ran out"):
        users.delete(second.id)
    assert db["users"].count_documents({"role": "admin"}) == 2
    assert db["locks"].count_documents({}) == 0


def test_the_last_admin_cannot_be_deleted_and_a_retry_finds_nothing_to_delete(db: Db) -> None:
    users = UserRepository(db)
    first, second = add_user(db, role="admin"), add_user(db, role="admin")
    users.delete(first.id)  # another admin stays
    assert users.find_by_id(first.id) is None
    with pytest.raises(ConflictError, match="cannot close their account"):
        users.delete(second.id)
    assert db["users"].count_documents({"role": "admin"}) == 1
    users.delete(first.id)  # a retry after it was already deleted: nothing to do
    assert users.find_by_id(second.id) is not None
    assert db["locks"].count_documents({}) == 0


def test_deleting_a_malformed_user_id_deletes_nothing(db: Db) -> None:
    add_user(db)
    UserRepository(db).delete("nope")
    assert db["users"].count_documents({}) == 1


class LateUpsertCollection:
    """`users` as the loser of a concurrent first sign-in sees it on a server that does not retry
    the upsert itself: the winner's insert lands after this upsert found no match, so its own
    insert hits the unique index (E11000). Everything else is the real collection."""

    def __init__(self, users: Any, winner: UserRepository) -> None:
        self._users, self._winner, self.refused = users, winner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._users, name)

    def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        if not self.refused:
            self.refused += 1
            self._winner.upsert_on_login(args[0]["address"], is_admin=False)
            raise DuplicateKeyError("E11000 duplicate key error index: address_unique", 11000)
        return self._users.find_one_and_update(*args, **kwargs)


def test_a_first_login_that_loses_the_insert_race_signs_in_as_the_winners_user() -> None:
    database = _database()
    winner = UserRepository(database)
    loser = UserRepository(database)
    late = LateUpsertCollection(database["users"], winner)
    loser._users = late  # type: ignore[assignment]
    # WHEN the loser's upsert is refused with a duplicate key
    user = loser.upsert_on_login(ADDRESS, is_admin=False)
    # THEN it signs in as the one user the winner created (6d2cc82: DuplicateKeyError, a 500)
    assert late.refused == 1
    assert user == winner.find_by_address(ADDRESS)
    assert database["users"].count_documents({"address": ADDRESS}) == 1
