"""The role a user holds where it is stored: what every privileged action checks.

Tokens, and the authorizer decisions API Gateway caches for up to its TTL, carry the role the
user had when signing in; an admin action must use the role as it is now (ARCHITECTURE.md,
"Authorization facts change faster than the authorizer cache"). One indexed read by `_id`,
kept apart from the repository so that functions which only check a caller import no more.
"""

from __future__ import annotations

from pymongo.database import Database

from lucid.identity import Role
from lucid.store.documents import Document, database_errors, is_valid_id

COLLECTION = "users"  # lucid.users.repository.COLLECTION


def stored_role(database: Database[Document], user_id: str) -> Role | None:
    """The role `user_id` holds now; None when there is no such user (a closed account)."""
    if not is_valid_id(user_id):
        return None
    with database_errors("users", database):
        document = database[COLLECTION].find_one({"_id": user_id}, {"role": 1})
    return None if document is None else Role.parse(document.get("role"))
