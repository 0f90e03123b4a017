"""The embedded MongoDB's indexes: the same answers as mongomock's scans, without the scans.

Each test drives an indexed collection (what the wire server serves) beside a plain mongomock
one holding the same documents; every answer must be identical.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator
from typing import Any

import mongomock
import pytest
from mongomock import filtering
from mongomock.helpers import utcnow
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from lucid_edge.local import mongo_index
from lucid_edge.local.mongo_index import Collections, indexed_client

Doc = dict[str, Any]
INDEXES = [
    IndexModel([("address", ASCENDING)], name="address_unique", unique=True, sparse=True),
    IndexModel([("owner_id", ASCENDING), ("created_at", DESCENDING)], name="owner_created"),
    IndexModel([("tags", ASCENDING)], name="tags"),
]


@pytest.fixture
def pair() -> tuple[Any, Any]:
    """(indexed collection, plain mongomock collection), both with INDEXES."""
    indexed = Collections(indexed_client()).get("lucid", "things")
    plain: Any = mongomock.MongoClient(tz_aware=True)["lucid"]["things"]
    for collection in (indexed, plain):
        collection.create_indexes(INDEXES)
    return indexed, plain


def _queries(ids: list[str]) -> Iterator[Doc]:
    owners = ["o1", "o2", "o3", None]
    for owner in owners:
        yield {"owner_id": owner}
        yield {"owner_id": {"$eq": owner}, "n": {"$gte": 3}}
    yield {"owner_id": {"$in": ["o1", "o3"]}}
    yield {"$and": [{"owner_id": "o2"}, {"status": "live"}]}
    yield {"tags": "red"}
    yield {"tags": {"$in": ["blue", "green"]}}
    yield {"address": "T7"}
    yield {"n": {"$lt": 5}}  # no index: scanned
    for some_id in [*ids[:6], "missing"]:
        yield {"_id": some_id}
        yield {"_id": some_id, "owner_id": "o1"}
    yield {"_id": {"$in": ids[:3]}}


def _same_answers(indexed: Any, plain: Any, ids: list[str]) -> None:
    for query in _queries(ids):
        # in the same order too: a write without a sort takes the first match, as mongomock does
        expected = list(plain.find(query))
        assert list(indexed.find(query)) == expected, query
        assert indexed.count_documents(query) == len(expected)


def test_random_writes_leave_every_lookup_answering_as_a_scan_does(pair: tuple[Any, Any]) -> None:
    # GIVEN the same random sequence of writes applied to both collections
    indexed, plain = pair
    rng = random.Random(11)
    ids: list[str] = []
    for step in range(400):
        action = rng.choice(["insert", "insert", "set", "many", "replace", "delete", "fam", "up"])
        owner = rng.choice(["o1", "o2", "o3"])
        target = rng.choice(ids) if ids else "none"
        change = {"owner_id": rng.choice(["o1", "o2", "o3"]), "n": rng.randint(0, 9)}
        if rng.random() < 0.3:
            change["tags"] = rng.sample(["red", "blue", "green"], rng.randint(0, 2))
        unowned = rng.random() < 0.2
        for collection in (indexed, plain):
            if action == "insert":
                document = {"_id": f"id{step}", "owner_id": owner, "n": step % 10, "status": "live"}
                if unowned:
                    document.pop("owner_id")
                collection.insert_one(document)
            elif action == "set":
                collection.update_one({"_id": target}, {"$set": change})
            elif action == "many":
                collection.update_many({"owner_id": owner}, {"$inc": {"n": 1}, "$set": change})
            elif action == "replace":
                collection.replace_one({"_id": target}, {"owner_id": owner, "n": 1})
            elif action == "delete":
                collection.delete_one({"owner_id": owner})
            elif action == "fam":
                collection.find_one_and_update(
                    {"owner_id": owner}, {"$set": change}, return_document=ReturnDocument.AFTER
                )
            else:
                collection.update_one({"_id": f"up{step}"}, {"$set": change}, upsert=True)
        if action == "insert":
            ids.append(f"id{step}")
        if step % 40 == 0:
            _same_answers(indexed, plain, ids)
    # THEN every lookup gives what a full scan gives
    _same_answers(indexed, plain, ids)


def test_a_lookup_by_id_or_index_examines_only_its_candidates(
    pair: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 2,000 documents, 20 per owner
    indexed, _ = pair
    indexed.insert_many(
        [{"_id": f"id{n}", "owner_id": f"o{n % 100}", "address": f"T{n}"} for n in range(2000)]
    )
    examined: list[Doc] = []
    real = filtering.filter_applies  # what mongo_index calls, until replaced below

    def counting(query: Doc, document: Doc) -> bool:
        examined.append(document)
        return bool(real(query, document))

    monkeypatch.setattr(mongo_index, "filter_applies", counting)
    # WHEN one session is read by id and owner, a user by address, an owner's documents listed
    assert indexed.find_one({"_id": "id1234", "owner_id": "o34"})["address"] == "T1234"
    assert indexed.find_one({"address": "T77"})["_id"] == "id77"
    assert len(list(indexed.find({"owner_id": "o5"}).sort("_id", 1).limit(5))) == 5
    # THEN only the matching candidates were examined, not the 2,000 documents
    assert len(examined) == 1 + 1 + 20


def test_unique_indexes_hold_after_in_place_updates(pair: tuple[Any, Any]) -> None:
    indexed, _ = pair
    indexed.insert_many([{"_id": "a", "address": "T1"}, {"_id": "b", "address": "T2"}])
    # WHEN b's address is changed in place to a's
    with pytest.raises(DuplicateKeyError):
        indexed.update_one({"_id": "b"}, {"$set": {"address": "T1"}})
    # THEN the change is rolled back and both addresses are still found where they were
    assert indexed.find_one({"address": "T2"})["_id"] == "b"
    assert indexed.count_documents({"address": "T1"}) == 1
    # AND a moved address frees the old value for another document
    indexed.update_one({"_id": "b"}, {"$set": {"address": "T3"}})
    indexed.insert_one({"_id": "c", "address": "T2"})
    assert indexed.find_one({"address": "T3"})["_id"] == "b"
    with pytest.raises(DuplicateKeyError):
        indexed.insert_one({"_id": "d", "address": "T3"})
    assert indexed.find_one({"_id": "d"}) is None


def test_indexes_created_dropped_or_recreated_over_existing_documents(
    pair: tuple[Any, Any],
) -> None:
    indexed, plain = pair
    for collection in (indexed, plain):
        documents = [{"_id": str(n), "kind": n % 3, "owner_id": "o1"} for n in range(30)]
        collection.insert_many(documents)
        collection.create_index([("kind", ASCENDING)], name="kind")
    assert indexed.count_documents({"kind": 2}) == plain.count_documents({"kind": 2}) == 10
    for collection in (indexed, plain):
        collection.drop_indexes()
        collection.update_many({"kind": 1}, {"$set": {"kind": 2}})
    assert indexed.count_documents({"kind": 2}) == 20
    assert indexed.count_documents({"owner_id": "o1"}) == 30
    indexed.drop()
    assert indexed.count_documents({"owner_id": "o1"}) == 0


def test_ttl_expiry_removes_documents_and_their_index_entries(pair: tuple[Any, Any]) -> None:
    # GIVEN a TTL index and three tokens: expired, live, and not a date at all
    indexed, _ = pair
    indexed.create_index([("expires_at", ASCENDING)], name="ttl", expireAfterSeconds=0)
    now = utcnow()
    past, future = now - datetime.timedelta(seconds=1), now + datetime.timedelta(hours=1)
    indexed.insert_many(
        [
            {"_id": "old", "owner_id": "o1", "expires_at": past},
            {"_id": "live", "owner_id": "o1", "expires_at": future},
            {"_id": "odd", "owner_id": "o1", "expires_at": "tomorrow"},
        ]
    )
    # THEN the expired one is gone from every lookup, the others stay
    assert indexed.find_one({"_id": "old"}) is None
    assert sorted(d["_id"] for d in indexed.find({"owner_id": "o1"})) == ["live", "odd"]
    # AND pushing a date back keeps it, pulling it forward expires it on the next read
    indexed.update_one({"_id": "live"}, {"$set": {"expires_at": past}})
    assert indexed.find_one({"_id": "live"}) is None
    assert indexed.count_documents({}) == 1
