"""Profiles and user administration over the `users` collection (auth creates the documents).

A client may change only its display name, email and preferences (`ProfilePatch` forbids every
other field, OWASP API3); roles change only through `set_role`, an admin route. The last admin
can never be demoted: a demotion is one atomic update, followed by a check that an admin is left;
if two demotions race and none is, each is undone and refused (409), so the system never stays
without an admin.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator
from pymongo import ReturnDocument
from pymongo.database import Database

from lucid.errors import ConflictError, NotFoundError
from lucid.store.documents import (
    Document,
    check_json_object,
    database_errors,
    is_valid_id,
    iso,
    utcnow,
)
from lucid.store.pagination import Page, SortOrder, fetch_page

COLLECTION = "users"
ADMIN = "admin"
MAX_PREFERENCES_BYTES = 4 * 1024

Role = Literal["user", "admin"]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
# Deliberately loose (one @, a dot in the domain, no spaces): mail delivery is the real check.
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
    ),
]


def _preferences(value: dict[str, Any]) -> dict[str, Any]:
    return check_json_object(value, max_bytes=MAX_PREFERENCES_BYTES)


class ProfilePatch(BaseModel):
    """The body of PATCH /users/me. `null` clears display_name or email."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    email: Email | None = None
    preferences: Annotated[dict[str, Any], AfterValidator(_preferences)] | None = None

    @field_validator("preferences", mode="before")
    @classmethod
    def _preferences_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be an object (send {} to clear it)")
        return value


class RoleChange(BaseModel):
    """The body of PUT /users/{id}/role."""

    model_config = ConfigDict(extra="forbid")

    role: Role


def public_user(document: Document) -> dict[str, Any]:
    """The JSON representation of a stored user."""
    return {
        "id": document["_id"],
        "address": document.get("address"),
        "role": document.get("role", "user"),
        "display_name": document.get("display_name"),
        "email": document.get("email"),
        "preferences": document.get("preferences") or {},
        "created_at": iso(document.get("created_at")),
        "updated_at": iso(document.get("updated_at")),
        "last_login_at": iso(document.get("last_login_at")),
    }


def _not_found() -> NotFoundError:
    return NotFoundError("no such user")


class UserDirectory:
    """Reads and administrative writes on users."""

    def __init__(self, database: Database[Document]) -> None:
        self._users = database[COLLECTION]

    def get(self, user_id: str) -> Document:
        """The user `user_id`; 404 when the id is malformed or unknown."""
        if not is_valid_id(user_id):
            raise _not_found()
        with database_errors("users"):
            document = self._users.find_one({"_id": user_id})
        if document is None:
            raise _not_found()
        return document

    def update_profile(self, user_id: str, patch: ProfilePatch) -> Document:
        """The user after applying the fields `patch` carries (one atomic update)."""
        changes = patch.model_dump(exclude_unset=True)
        if not changes:
            return self.get(user_id)
        changes["updated_at"] = utcnow()
        return self._update(user_id, {"$set": changes})

    def list(self, *, role: Role | None, limit: int, cursor: str | None, sort: SortOrder) -> Page:
        """A page of users, optionally only those with `role`."""
        filters: dict[str, Any] = {} if role is None else {"role": role}
        with database_errors("users"):
            return fetch_page(self._users, filters, limit=limit, cursor=cursor, sort=sort)

    def set_role(self, user_id: str, role: Role) -> Document:
        """The user with `role`; 409 when that would leave no admin."""
        if role != ADMIN:
            return self.demote(user_id)
        return self._update(user_id, {"$set": {"role": ADMIN, "updated_at": utcnow()}})

    def demote(self, user_id: str) -> Document:
        """The user as a plain user; 409 when it is the last admin (then nothing changes)."""
        target = self.get(user_id)
        if target.get("role") != ADMIN:
            return target
        if self._admin_count() <= 1:
            raise _last_admin()
        demoted = self._update(user_id, {"$set": {"role": "user", "updated_at": utcnow()}})
        if self._admin_count() == 0:
            # A concurrent demotion took the other admin: undo ours so one stays.
            with database_errors("users"):
                self._users.update_one({"_id": user_id, "role": "user"}, {"$set": {"role": ADMIN}})
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
            return self._users.count_documents({"role": ADMIN}, limit=2)

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


def _last_admin() -> ConflictError:
    return ConflictError("the last admin cannot be demoted; promote another admin first")
