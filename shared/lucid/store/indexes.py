"""The MongoDB indexes the gateway relies on, created idempotently.

`ensure_indexes` is what `lucid db init` runs; functions call `ensure_indexes_once` from their
repository dependencies, so the first request of a cold start creates whatever is missing (a
no-op on a prepared database) and a database that was down at cold start is retried on the next
request instead of leaving the instance without its unique index.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

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
        IndexModel([("revoked_at", ASCENDING)], name="revoked"),
        # The nonce a sign-in was started with, on its first refresh token only (sparse): a
        # nonce Redis brought back after it was spent cannot start a second sign-in.
        IndexModel(
            [("signin_nonce", ASCENDING)], name="signin_nonce_unique", unique=True, sparse=True
        ),
    ],
}

# Indexes an earlier release created that nothing reads any more, by collection: each costs a
# write per insert, so `lucid db init` drops them (`drop_retired_indexes`). Functions only create
# indexes, never drop them: a database keeps these until `lucid db init` runs at a deploy.
# - tokens.access_jti: no query ever filtered on it (the field stays on each refresh token, for an
#   operator matching a record with the access token issued beside it).
RETIRED_INDEXES: dict[str, tuple[str, ...]] = {"tokens": ("access_jti",)}

# Databases already prepared by this process, by identity: databases compare equal by client
# address and name, so two distinct in-memory databases called "lucid" would look like one.
_prepared: dict[int, weakref.ref[Database[Document]]] = {}
_lock = threading.Lock()


# MongoDB's answer when the key pattern is already indexed under another name (or the name is
# taken with other options): the whole createIndexes command is refused, nothing is created.
INDEX_OPTIONS_CONFLICT = 85
# Its answer when an index of another signature (key, unique, sparse, partial filter) already
# has the name (mongodb/mongo src/mongo/db/catalog/index_catalog_impl.cpp
# `_doesSpecConflictWithExisting`).
INDEX_KEY_SPECS_CONFLICT = 86
# Options that change what an index guarantees or holds; the rest (name, v, background) do not.
_MEANINGFUL = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation")


class IndexConflictError(RuntimeError):
    """An index made outside the gateway (by hand, another tool) holds the key pattern one of
    ours needs, with options that do not give the guarantee ours gives."""


def ensure_indexes(database: Database[Document]) -> dict[str, list[str]]:
    """Create every index in `INDEXES` that `database` lacks; the names per collection.

    An index someone created by hand on the same key with the same options (`address_1`,
    unique) serves as ours: a real server refuses ours beside it (85 IndexOptionsConflict), and
    that must not fail every request. One with our key, unique, sparse and partial filter but
    other options (no TTL, another TTL) is refused beside ours too, and is `IndexConflictError`.
    One that differs in those (a plain `address_1`) is another index to MongoDB 5.0+, which
    makes ours beside it (mongodb/mongo index_descriptor.cpp `compareIndexOptions`).
    """
    created: dict[str, list[str]] = {}
    with database_errors("database", database):
        for collection, models in INDEXES.items():
            try:
                created[collection] = database[collection].create_indexes(models)
            except OperationFailure as error:
                if error.code not in (INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT):
                    raise
                created[collection] = [_ensure_one(database[collection], m) for m in models]
            _refuse_stricter_unique(database[collection], models)
    return created


def _refuse_stricter_unique(collection: Collection[Document], models: list[IndexModel]) -> None:
    """IndexConflictError when a unique index that is neither sparse nor partial shares the key
    of one of ours that is (`signin_nonce_unique`): MongoDB 5.0+ keeps both (`sparse` is part of
    an index's signature), and the other refuses a second document without the field as a
    duplicate of null (every refresh token but a sign-in's first lacks `signin_nonce`)."""
    skipping = [m.document for m in models if m.document.get("sparse") or _partial(m.document)]
    if not skipping:
        return
    for existing in collection.list_indexes():
        if not existing.get("unique") or existing.get("sparse") or _partial(existing):
            continue
        for wanted in skipping:
            if list(existing["key"].items()) == list(wanted["key"].items()):
                field = ", ".join(wanted["key"])
                raise IndexConflictError(
                    f"{collection.name}: index {existing['name']!r} is unique on the key of "
                    f"{wanted['name']!r} but not sparse, so it refuses a second document "
                    f"without {field} (a duplicate null); drop it "
                    f"(db.{collection.name}.dropIndex({existing['name']!r})) and run "
                    "`lucid db init`"
                )


def _partial(index: Mapping[str, Any]) -> bool:
    return index.get("partialFilterExpression") is not None


def _ensure_one(collection: Collection[Document], model: IndexModel) -> str:
    """The name of the index serving `model`: created, or an equivalent one already there."""
    try:
        return collection.create_indexes([model])[0]
    except OperationFailure as error:
        wanted = model.document
        if error.code == INDEX_KEY_SPECS_CONFLICT:
            raise IndexConflictError(
                f"{collection.name}: an index made outside the gateway is named "
                f"{wanted['name']!r} but is not ours (another key, or other unique, sparse or "
                f"partial options); drop it (db.{collection.name}.dropIndex({wanted['name']!r})) "
                "and run `lucid db init`"
            ) from error
        if error.code != INDEX_OPTIONS_CONFLICT:
            raise
        for existing in collection.list_indexes():
            if list(existing["key"].items()) != list(wanted["key"].items()):
                continue
            if all(existing.get(option) == wanted.get(option) for option in _MEANINGFUL):
                return str(existing["name"])
            options = {option: wanted[option] for option in _MEANINGFUL if option in wanted}
            raise IndexConflictError(
                f"{collection.name}: index {existing['name']!r} holds the key of "
                f"{wanted['name']!r} without its options {options}; drop it "
                f"(db.{collection.name}.dropIndex({existing['name']!r})) and run `lucid db init`"
            ) from error
        raise


def drop_retired_indexes(database: Database[Document]) -> list[str]:
    """Drop every index in `RETIRED_INDEXES` that `database` still has; `collection.index` each."""
    dropped: list[str] = []
    with database_errors("database", database):
        for collection, names in RETIRED_INDEXES.items():
            present = {index["name"] for index in database[collection].list_indexes()}
            for name in names:
                if name in present:
                    database[collection].drop_index(name)
                    dropped.append(f"{collection}.{name}")
    return dropped


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
