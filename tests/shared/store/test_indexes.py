"""The MongoDB indexes: created idempotently, retried after an outage, per database.

MongoDB is the in-memory store (mongomock behind the wire protocol) except where a real pymongo
client is pointed at a closed port to stand for "MongoDB is down".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from lucid.auth.refresh import RefreshTokenStore
from lucid.errors import ServiceUnavailableError
from lucid.sessions.repository import SessionRepository
from lucid.sessions.schemas import SessionCreate
from lucid.store import resp
from lucid.store.documents import new_id
from lucid.store.indexes import INDEXES, IndexConflictError, ensure_indexes, ensure_indexes_once
from lucid.users.repository import UserRepository
from lucid_edge.local import in_memory_database
from tests.utils.datastore import revocations_on

Db = Database[dict[str, Any]]


def test_indexes_are_created_idempotently_and_enforce_unique_addresses(db: Db) -> None:
    first = ensure_indexes(db)
    second = ensure_indexes(db)
    assert first == second
    assert "address_unique" in db["users"].index_information()
    assert {"owner_created", "status"} <= set(db["sessions"].index_information())
    assert "expires_ttl" in db["tokens"].index_information()
    db["users"].insert_one({"_id": "a", "address": "T1"})
    with pytest.raises(DuplicateKeyError):
        db["users"].insert_one({"_id": "b", "address": "T1"})


def test_ensure_once_retries_a_database_that_was_down(dead_db: Db, db: Db) -> None:
    with pytest.raises(ServiceUnavailableError, match=r"^the database store is unavailable$"):
        ensure_indexes_once(dead_db)
    ensure_indexes_once(db)
    db["sessions"].drop_indexes()
    ensure_indexes_once(db)  # remembered: no second round trip
    assert "owner_created" not in db["sessions"].index_information()


def test_each_fresh_database_gets_its_indexes_even_when_it_looks_like_another(db: Db) -> None:
    # GIVEN a prepared database, and another object equal to it (same address and name) over
    # a database that was dropped meanwhile
    ensure_indexes_once(db)
    db.client.drop_database(db.name)
    twin: Db = Database(db.client, db.name)
    assert twin == db
    # WHEN it is first used THEN it gets its own indexes
    ensure_indexes_once(twin)
    assert "address_unique" in twin["users"].index_information()


def test_a_hand_made_index_with_our_options_serves_and_a_plain_one_is_kept_beside_ours(
    db: Db,
) -> None:
    # GIVEN the unique address index made by hand under its default name (a real server refuses
    # ours beside it: 85 IndexOptionsConflict)
    db["users"].create_index("address", unique=True)
    # WHEN the gateway prepares the database THEN that index serves as ours, the rest are made
    created = ensure_indexes(db)
    assert created["users"] == ["address_1", "role_created", "created"]
    assert "address_unique" not in db["users"].index_information()
    assert ensure_indexes(db) == created
    db["users"].insert_one({"_id": "a", "address": "T1"})
    with pytest.raises(DuplicateKeyError):
        db["users"].insert_one({"_id": "b", "address": "T1"})
    # GIVEN instead a hand-made index on the address that is not unique
    other: Db = in_memory_database()
    other["users"].create_index("address")
    # THEN ours is made beside it, as MongoDB 5.0+ makes it (`unique` is part of an index's
    # signature: a unique and a plain index on one key are two indexes), and addresses are
    # unique (the in-memory server refused ours with 85, which a real server does not)
    assert ensure_indexes(other)["users"] == ["address_unique", "role_created", "created"]
    assert sorted(other["users"].index_information()) == [
        "_id_",
        "address_1",
        "address_unique",
        "created",
        "role_created",
    ]
    other["users"].insert_one({"_id": "a", "address": "T1"})
    with pytest.raises(DuplicateKeyError):
        other["users"].insert_one({"_id": "b", "address": "T1"})


def test_every_index_is_on_fields_the_gateway_writes(db: Db, store_redis: resp.Redis) -> None:
    # GIVEN a user, a session of theirs and a revoked refresh-token family, written by the
    # repositories as requests write them
    ensure_indexes(db)
    user = UserRepository(db).upsert_on_login("TIndexedAddress", is_admin=False)
    SessionRepository(db).create(user["_id"], SessionCreate(name="indexed"))
    tokens = RefreshTokenStore(db, timedelta(days=14), revocations_on(store_redis, db))
    family = new_id()
    tokens.issue(user["_id"], "jti-1", family, signin_nonce="n-1")
    tokens.revoke_family(family)
    # THEN every field an index is on is one those documents have (an index on a field nobody
    # writes serves no query: on a real server its queries scan the collection)
    for collection in INDEXES:
        written = set().union(*(document.keys() for document in db[collection].find()))
        for index in db[collection].list_indexes():
            assert set(dict(index["key"])) <= written, (collection, index["name"])


@pytest.mark.parametrize(
    ("key", "options", "ours", "lacking"),
    [
        # no TTL, or another one: spent refresh tokens would never (or not then) vanish
        ("expires_at", {}, "expires_ttl", "{'expireAfterSeconds': 0}"),
        ("expires_at", {"expireAfterSeconds": 3600}, "expires_ttl", "{'expireAfterSeconds': 0}"),
    ],
)
def test_a_hand_made_token_index_without_our_guarantee_is_named(
    db: Db, key: str, options: dict[str, Any], ours: str, lacking: str
) -> None:
    # GIVEN a hand-made index on the key of one of ours, without the option that makes it ours
    db["tokens"].create_index(key, **options)
    # THEN preparing the database refuses to take it for ours, naming it and what it lacks
    with pytest.raises(IndexConflictError) as refused:
        ensure_indexes(db)
    assert str(refused.value) == (
        f"tokens: index '{key}_1' holds the key of '{ours}' without its options {lacking}; "
        f"drop it (db.tokens.dropIndex('{key}_1')) and run `lucid db init`"
    )


def test_a_hand_made_unique_signin_nonce_index_that_is_not_sparse_is_named(db: Db) -> None:
    # GIVEN a unique signin_nonce index made by hand, not sparse: MongoDB 5.0+ makes ours
    # beside it (`sparse` is part of an index's signature), and it alone refuses the second
    # refresh token without a nonce, a duplicate of null
    db["tokens"].create_index("signin_nonce", unique=True)
    # WHEN the gateway prepares the database THEN it refuses, naming the index and the fix
    with pytest.raises(IndexConflictError) as refused:
        ensure_indexes(db)
    assert str(refused.value) == (
        "tokens: index 'signin_nonce_1' is unique on the key of 'signin_nonce_unique' but not "
        "sparse, so it refuses a second document without signin_nonce (a duplicate null); drop "
        "it (db.tokens.dropIndex('signin_nonce_1')) and run `lucid db init`"
    )
    # AND once it is dropped, preparing succeeds and tokens without a nonce are stored
    db["tokens"].drop_index("signin_nonce_1")
    ensure_indexes(db)
    db["tokens"].insert_many([{"_id": "a"}, {"_id": "b"}])


def test_a_hand_made_index_under_one_of_our_names_is_named(db: Db) -> None:
    # GIVEN an index named as ours but not sparse (MongoDB: 86 IndexKeySpecsConflict)
    db["tokens"].create_index("signin_nonce", unique=True, name="signin_nonce_unique")
    # THEN preparing the database refuses it with the fix, not a driver error
    with pytest.raises(IndexConflictError, match=r"dropIndex\('signin_nonce_unique'\)"):
        ensure_indexes(db)
