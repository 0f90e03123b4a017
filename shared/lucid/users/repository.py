"""The `users` collection, the one repository over it: sign-in, profiles and administration.

A user document (created at the first sign-in):

    _id            32-hex uuid4 (`lucid.store.documents.new_id`), the token `sub`
    address        TRON Base58Check address, unique index `address_unique`
    role           "user" | "admin" (`lucid.identity.Role`)
    display_name, email, preferences   the profile, changed only through `ProfilePatch`
    created_at     first sign-in (UTC datetime)
    updated_at     last change of the document's profile/role (UTC datetime)
    last_login_at  last successful sign-in (UTC datetime)

Role on login: an address listed in ADMIN_ADDRESSES is made admin at every sign-in; any other
address starts as "user" and keeps whatever role an admin later gives it (removing an address
from ADMIN_ADDRESSES does not demote it: use the users API). Roles change otherwise only through
`set_role`, an admin route.

The last admin never goes (409), whatever races or fails. Every write that can take an admin
away (a demotion, deleting a user: the closure of an account) runs under one lease lock in
MongoDB (`lucid.store.lease`, `locks` document "admins"), counts the admins there and writes only
when another admin stays. Only these writes remove admins, and they run one at a time, so while
one holds the lease the admins can only grow (a sign-in in ADMIN_ADDRESSES, a promotion): the
count it saw stays true until its own write, no request ever sees zero admins, and a demotion
is refused only when it would really leave none. A fault or crash anywhere leaves at least one
admin: before the write nothing changed, after it the next holder counts what is stored (a
write whose reply was lost included), and a holder that never releases holds others off for one
lease (60 s; they get 409 with Retry-After after waiting up to 5 s), never for good.

Why not the alternatives: a multi-document transaction needs a replica set (MONGODB_URI may name
a standalone server) and the in-memory store cannot run one; an admin count kept in its own
document and moved with a conditional `$inc` must be repaired whenever the role write after it
fails, and drifts from the users it counts, so it would still need a recount under a lock.
Redis cannot hold the guard's truth: it may be down, or restored from an old snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from lucid.errors import ConflictError, NotFoundError
from lucid.identity import Role
from lucid.store import fast_reads
from lucid.store.documents import Document, database_errors, is_valid_id, new_id, utcnow
from lucid.store.lease import Lease
from lucid.store.pagination import Page, SortOrder, fetch_page

if TYPE_CHECKING:
    # A type only: the request and response models belong to the users routes; the auth
    # function, which creates a user at first sign-in, builds none of them.
    from lucid.users.schemas import ProfilePatch

COLLECTION = "users"


def _not_found() -> NotFoundError:
    return NotFoundError("no such user")


def _last_admin(what: str) -> ConflictError:
    return ConflictError(f"the last admin cannot {what}; promote another admin first")


ADMINS_LEASE = "admins"
ADMINS_BUSY = "another change to the admins is in progress; retry after Retry-After seconds"


class UserRepository:
    """Every read and write on `users`."""

    def __init__(self, database: Database[Document], *, admins: Lease | None = None) -> None:
        """`admins` is the lease every removal of an admin holds (default: the "admins" one)."""
        self._users = database[COLLECTION]
        self._admins = admins or Lease(database, ADMINS_LEASE, busy=ADMINS_BUSY)

    # --- reads -------------------------------------------------------------------------------

    def find_by_id(self, user_id: str) -> Document | None:
        """The user `user_id`, or None (also for an id that is not one of ours)."""
        if not is_valid_id(user_id):
            return None
        with database_errors("users", self._users):
            # Every signed-in GET /users/me makes this read: `lucid.store.fast_reads`.
            return fast_reads.find_one(self._users, {"_id": user_id})

    def find_by_address(self, address: str) -> Document | None:
        """The user signed in as `address`, or None."""
        with database_errors("users", self._users):
            return self._users.find_one({"address": address})

    def get(self, user_id: str) -> Document:
        """The user `user_id`; 404 when the id is malformed or unknown."""
        document = self.find_by_id(user_id)
        if document is None:
            raise _not_found()
        return document

    def list(self, *, role: Role | None, limit: int, cursor: str | None, sort: SortOrder) -> Page:
        """A page of users, optionally only those with `role`."""
        filters: dict[str, Any] = {} if role is None else {"role": role.value}
        with database_errors("users", self._users):
            return fetch_page(self._users, filters, limit=limit, cursor=cursor, sort=sort)

    # --- sign-in -----------------------------------------------------------------------------

    def upsert_on_login(self, address: str, *, is_admin: bool) -> Document:
        """The user for `address` after this sign-in (created on the first one)."""
        now = utcnow()
        changes: dict[str, Any] = {"last_login_at": now}
        on_insert: dict[str, Any] = {"_id": new_id(), "created_at": now, "updated_at": now}
        if is_admin:
            changes["role"] = Role.ADMIN.value
        else:
            on_insert["role"] = Role.USER.value
        update = {"$set": changes, "$setOnInsert": on_insert}
        # Concurrent first logins cannot create two users: `address` is uniquely indexed. The
        # loser of the race gets a duplicate key error unless its server retries the upsert
        # itself (MongoDB does for `update` since 4.2, SERVER-37124; findAndModify came later,
        # SERVER-47212; DocumentDB does not): the document exists then, so once more updates it.
        with database_errors("users", self._users):
            try:
                document = self._upsert(address, update)
            except DuplicateKeyError:
                document = self._upsert(address, update)
        assert document is not None  # upsert=True always yields the document
        return document

    def _upsert(self, address: str, update: dict[str, Any]) -> Document | None:
        return self._users.find_one_and_update(
            {"address": address}, update, upsert=True, return_document=ReturnDocument.AFTER
        )

    # --- profile and administration ----------------------------------------------------------

    def update_profile(self, user_id: str, patch: ProfilePatch) -> Document:
        """The user after applying the fields `patch` carries (one atomic update)."""
        changes = patch.model_dump(exclude_unset=True)
        if not changes:
            return self.get(user_id)
        changes["updated_at"] = utcnow()
        return self._update(user_id, {"$set": changes})

    def set_role(self, user_id: str, role: Role) -> Document:
        """The user with `role`; 409 when that would leave no admin."""
        if role != Role.ADMIN:
            return self.demote(user_id)
        return self._update(user_id, {"$set": {"role": Role.ADMIN.value, "updated_at": utcnow()}})

    def demote(self, user_id: str) -> Document:
        """The user as a plain user; 409 when it is the last admin (then nothing changes)."""
        target = self.get(user_id)
        if target.get("role") != Role.ADMIN:
            return target
        with self._admins.held() as lease:
            if self._admin_count() <= 1:
                raise _last_admin("be demoted")
            lease.check()
            with database_errors("users", self._users):
                demoted = self._users.find_one_and_update(
                    {"_id": user_id, "role": Role.ADMIN.value},
                    {"$set": {"role": Role.USER.value, "updated_at": utcnow()}},
                    return_document=ReturnDocument.AFTER,
                )
        # None: a removal before ours (deleted; demoted before we held the lease): as it is now.
        return self.get(user_id) if demoted is None else demoted

    def delete(self, user_id: str) -> None:
        """Delete the user document, if there is one (a retry finds it gone: nothing to do);
        409 when it is the last admin (then nothing changes)."""
        if not is_valid_id(user_id):
            return
        plain_user = {"_id": user_id, "role": {"$ne": Role.ADMIN.value}}
        with database_errors("users", self._users):
            # A plain user goes without the lease: the filter makes sure it still is one.
            if self._users.delete_one(plain_user).deleted_count == 1:
                return
        with self._admins.held() as lease:
            # With another admin besides, this user goes whatever its role; else only as a user.
            spare = self._admin_count() > 1
            lease.check()
            with database_errors("users", self._users):
                deleted = self._users.delete_one({"_id": user_id} if spare else plain_user)
            if deleted.deleted_count == 1 or self.find_by_id(user_id) is None:
                return
        raise _last_admin("close their account")

    def _admin_count(self) -> int:
        with database_errors("users", self._users):
            return self._users.count_documents({"role": Role.ADMIN.value}, limit=2)

    def _update(self, user_id: str, update: dict[str, Any]) -> Document:
        if not is_valid_id(user_id):
            raise _not_found()
        with database_errors("users", self._users):
            document = self._users.find_one_and_update(
                {"_id": user_id}, update, return_document=ReturnDocument.AFTER
            )
        if document is None:
            raise _not_found()
        return document
