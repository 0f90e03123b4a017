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
`set_role`, an admin route. The last admin can never be demoted: a demotion is one atomic update,
followed by a check that an admin is left; if two demotions race and none is, each is undone and
refused (409), so the system never stays without an admin.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from lucid.errors import ConflictError, NotFoundError
from lucid.identity import Role
from lucid.store.documents import Document, database_errors, is_valid_id, new_id, utcnow
from lucid.store.pagination import Page, SortOrder, fetch_page
from lucid.users.schemas import ProfilePatch

COLLECTION = "users"


def _not_found() -> NotFoundError:
    return NotFoundError("no such user")


def _last_admin() -> ConflictError:
    return ConflictError("the last admin cannot be demoted; promote another admin first")


class UserRepository:
    """Every read and write on `users`."""

    def __init__(self, database: Database[Document]) -> None:
        self._users = database[COLLECTION]

    # --- reads -------------------------------------------------------------------------------

    def find_by_id(self, user_id: str) -> Document | None:
        """The user `user_id`, or None (also for an id that is not one of ours)."""
        if not is_valid_id(user_id):
            return None
        with database_errors("users"):
            return self._users.find_one({"_id": user_id})

    def find_by_address(self, address: str) -> Document | None:
        """The user signed in as `address`, or None."""
        with database_errors("users"):
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
        with database_errors("users"):
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
        with database_errors("users"):
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
        if self._admin_count() <= 1:
            raise _last_admin()
        demoted = self._update(user_id, {"$set": {"role": Role.USER.value, "updated_at": utcnow()}})
        if self._admin_count() == 0:
            # A concurrent demotion took the other admin: undo ours so one stays.
            with database_errors("users"):
                self._users.update_one(
                    {"_id": user_id, "role": Role.USER.value}, {"$set": {"role": Role.ADMIN.value}}
                )
            raise _last_admin()
        return demoted

    def delete(self, user_id: str) -> bool:
        """Delete the user document; False when it was already gone."""
        if not is_valid_id(user_id):
            return False
        with database_errors("users"):
            return self._users.delete_one({"_id": user_id}).deleted_count == 1

    def _admin_count(self) -> int:
        with database_errors("users"):
            return self._users.count_documents({"role": Role.ADMIN.value}, limit=2)

    def _update(self, user_id: str, update: dict[str, Any]) -> Document:
        if not is_valid_id(user_id):
            raise _not_found()
        with database_errors("users"):
            document = self._users.find_one_and_update(
                {"_id": user_id}, update, return_document=ReturnDocument.AFTER
            )
        if document is None:
            raise _not_found()
        return document
