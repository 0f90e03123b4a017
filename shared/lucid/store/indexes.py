"""The MongoDB indexes the gateway relies on, created idempotently.

`ensure_indexes` is what `lucid db init` runs; functions call `ensure_indexes_once` from their
repository dependencies, so the first request of a cold start creates whatever is missing (a
no-op on a prepared database) and a database that was down at cold start is retried on the next
request instead of leaving the instance without its unique index.
"""

from __future__ import annotations

import threading
import weakref

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from lucid.store.documents import Document, database_errors

INDEXES: dict[str, list[IndexModel]] = {
    "users": [
        IndexModel([("address", ASCENDING)], name="address_unique", unique=True),
        IndexModel(
            [("role", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="role_created",
        ),
        IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="created"),
    ],
    "sessions": [
        IndexModel(
            [("owner_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="owner_created",
        ),
        IndexModel([("status", ASCENDING)], name="status"),
    ],
    # Refresh tokens (lucid.auth.refresh): expiry is a TTL index, so spent families vanish.
    # `revoked` serves the reload of revoked sign-ins into Redis (lucid.auth.revocation).
    "tokens": [
        IndexModel([("expires_at", ASCENDING)], name="expires_ttl", expireAfterSeconds=0),
        IndexModel([("family_id", ASCENDING)], name="family"),
        IndexModel([("user_id", ASCENDING)], name="user"),
        IndexModel([("access_jti", ASCENDING)], name="access_jti"),
        IndexModel([("revoked_at", ASCENDING)], name="revoked"),
    ],
}

# Databases already prepared by this process, by identity: databases compare equal by client
# address and name, so two distinct in-memory databases called "lucid" would look like one.
_prepared: dict[int, weakref.ref[Database[Document]]] = {}
_lock = threading.Lock()


def ensure_indexes(database: Database[Document]) -> dict[str, list[str]]:
    """Create every index in `INDEXES` that `database` lacks; the names per collection."""
    created: dict[str, list[str]] = {}
    with database_errors("database"):
        for collection, models in INDEXES.items():
            created[collection] = database[collection].create_indexes(models)
    return created


def ensure_indexes_once(database: Database[Document]) -> None:
    """`ensure_indexes` the first time this process sees `database`, then nothing."""
    if _is_prepared(database):
        return
    with _lock:
        if not _is_prepared(database):
            ensure_indexes(database)
            _prepared[id(database)] = weakref.ref(database)


def _is_prepared(database: Database[Document]) -> bool:
    known = _prepared.get(id(database))
    return known is not None and known() is database
