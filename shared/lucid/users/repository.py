"""The `users` collection as sign-in sees it: look a user up, create or touch one on login.

A user document (shared with `lucid.users.directory`, which adds profile fields):

    _id            32-hex uuid4 (`lucid.store.documents.new_id`), the token `sub`
    address        TRON Base58Check address, unique index `address_unique`
    role           "user" | "admin"
    created_at     first sign-in (UTC datetime)
    updated_at     last change of the document's profile/role (UTC datetime)
    last_login_at  last successful sign-in (UTC datetime)

Role on login: an address listed in ADMIN_ADDRESSES is made admin at every sign-in; any other
address starts as "user" and keeps whatever role an admin later gives it (removing an address
from ADMIN_ADDRESSES does not demote it: use the users API).
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database

from lucid.store.documents import Document, database_errors, is_valid_id, new_id, utcnow

COLLECTION = "users"
ADMIN = "admin"
USER = "user"


class UserRepository:
    """Reads and the login upsert on `users`."""

    def __init__(self, database: Database[Document]) -> None:
        self._users = database[COLLECTION]

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

    def upsert_on_login(self, address: str, *, is_admin: bool) -> Document:
        """The user for `address` after this sign-in (created on the first one)."""
        now = utcnow()
        changes: dict[str, Any] = {"last_login_at": now}
        on_insert: dict[str, Any] = {"_id": new_id(), "created_at": now, "updated_at": now}
        if is_admin:
            changes["role"] = ADMIN
        else:
            on_insert["role"] = USER
        update = {"$set": changes, "$setOnInsert": on_insert}
        # Concurrent first logins cannot create two users: `address` is uniquely indexed and the
        # server (4.2+) retries an upsert whose duplicate key equals its equality filter.
        with database_errors("users"):
            document = self._users.find_one_and_update(
                {"address": address}, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        assert document is not None  # upsert=True always yields the document
        return document
