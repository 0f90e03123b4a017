"""The embedded MongoDB (lucid_edge.local.mongo_server), driven by pymongo and raw sockets."""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.timestamp import Timestamp
from pymongo import CursorType, MongoClient, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)
from pymongo.write_concern import WriteConcern

from lucid_edge.local import free_port, in_memory_database
from lucid_edge.local.mongo_core import IDLE_CURSOR_SECONDS, MAX_BATCH_BYTES, Cursors
from lucid_edge.local.mongo_server import EmbeddedMongo, EmbeddedMongoError, start_mongo_server

Doc = dict[str, Any]


class CommandLog(CommandListener):
    """The names of the commands a client sent."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def connect(uri: str, **options: Any) -> MongoClient[Doc]:
    return MongoClient(uri, serverSelectionTimeoutMS=2000, **options)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedMongo]:
    with start_mongo_server() as embedded:
        yield embedded


@pytest.fixture
def client(server: EmbeddedMongo) -> Iterator[MongoClient[Doc]]:
    with connect(server.uri) as mongo:
        yield mongo


@pytest.fixture
def db(client: MongoClient[Doc]) -> Iterator[Database[Doc]]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield client[name]
    client.drop_database(name)


# --- raw wire helpers ---------------------------------------------------------------------------


def frame(opcode: int, body: bytes, request_id: int = 7) -> bytes:
    return struct.pack("<iiii", 16 + len(body), request_id, 0, opcode) + body


def op_msg(command: Doc, flags: int = 0, sequence: tuple[str, list[Doc]] | None = None) -> bytes:
    body = struct.pack("<I", flags) + b"\x00" + bson.encode(command)
    if sequence is not None:
        payload = sequence[0].encode() + b"\x00" + b"".join(map(bson.encode, sequence[1]))
        body += b"\x01" + struct.pack("<i", 4 + len(payload)) + payload
    if flags & 1:
        body += b"\x00\x00\x00\x00"  # checksum: accepted, not verified
    return frame(2013, body)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def read_reply(sock: socket.socket) -> tuple[int, int, bytes]:
    """(opcode, responseTo, body) of the next message."""
    length, _, response_to, opcode = struct.unpack("<iiii", recv_exactly(sock, 16))
    return opcode, response_to, recv_exactly(sock, length - 16)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def raw(server: EmbeddedMongo) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        yield sock


# --- handshake and protocol ---------------------------------------------------------------------


def test_hello_describes_a_writable_standalone_without_streaming(client: MongoClient[Doc]) -> None:
    hello = client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["maxWireVersion"] == 17
    assert hello["minWireVersion"] == 0
    assert "topologyVersion" not in hello
    assert "setName" not in hello
    assert client.admin.command("isMaster")["ismaster"] is True
    assert client.server_info()["version"] == "6.0.0"
    assert client.admin.command("ping")["ok"] == 1.0


def test_legacy_op_query_handshake_is_answered_with_op_reply(raw: socket.socket) -> None:
    query = bson.encode({"$query": {"isMaster": 1}})
    raw.sendall(
        frame(2004, struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + query)
    )
    opcode, response_to, body = read_reply(raw)
    flags, cursor_id, _, returned = struct.unpack_from("<iqii", body)
    assert (opcode, response_to, flags, cursor_id, returned) == (1, 7, 0, 0, 1)
    assert bson.decode(body[20:])["ismaster"] is True


def test_op_msg_document_sequence_with_checksum_flag(raw: socket.socket, db: Database[Doc]) -> None:
    # GIVEN an insert whose documents travel in a kind-1 section, with the checksum flag set
    command = {"insert": "seq", "$db": db.name}
    raw.sendall(op_msg(command, flags=1, sequence=("documents", [{"_id": 1}, {"_id": 2}])))
    # THEN the server answers one kind-0 section and the documents exist
    opcode, response_to, body = read_reply(raw)
    assert (opcode, response_to, body[:5]) == (2013, 7, b"\x00" * 5)
    assert bson.decode(body[5:]) == {"n": 2, "ok": 1.0}
    assert db.seq.count_documents({}) == 2


def test_more_to_come_writes_get_no_reply(raw: socket.socket, db: Database[Doc]) -> None:
    raw.sendall(op_msg({"insert": "quiet", "documents": [{"_id": 1}], "$db": db.name}, flags=2))
    raw.sendall(frame(2013, op_msg({"ping": 1, "$db": "admin"})[16:], request_id=8))
    _, response_to, _ = read_reply(raw)
    assert response_to == 8  # the first reply answers the ping: the insert got none
    unacknowledged = db.quiet.with_options(write_concern=WriteConcern(w=0))
    unacknowledged.insert_one({"_id": 2})
    assert sorted(doc["_id"] for doc in db.quiet.find()) == [1, 2]


def test_messages_split_and_batched_arbitrarily_are_answered_in_order(raw: socket.socket) -> None:
    # GIVEN three pings sent as one stream cut at arbitrary points: the first message in two
    # pieces (mid-header, then mid-body), the other two arriving together with the first's tail
    pings = [frame(2013, op_msg({"ping": 1, "$db": "admin"})[16:], request_id=n) for n in (1, 2, 3)]
    stream = b"".join(pings)
    for piece in (stream[:10], stream[10:30], stream[30:]):
        raw.sendall(piece)
        time.sleep(0.05)  # each piece reaches the server on its own
    # THEN each is answered once, in order, and the connection stays usable
    assert [read_reply(raw)[1] for _ in pings] == [1, 2, 3]
    raw.sendall(frame(2013, op_msg({"ping": 1, "$db": "admin"})[16:], request_id=4))
    assert read_reply(raw)[1] == 4


GARBAGE = {
    "length below a header": struct.pack("<iiii", 5, 1, 0, 2013),
    "length above the maximum": struct.pack("<iiii", 100_000_000, 1, 0, 2013),
    "unsupported opcode": frame(2012, b"\x00" * 12),
    "invalid BSON": frame(2013, b"\x00\x00\x00\x00\x00" + b"\x10\x00\x00\x00garbage-garbage"),
    "unknown required flag": op_msg({"ping": 1, "$db": "admin"}, flags=1 << 2),
    "two body sections": frame(2013, op_msg({"ping": 1})[16:] + b"\x00" + bson.encode({"a": 1})),
    "unknown section kind": frame(2013, b"\x00\x00\x00\x00\x02" + bson.encode({"ping": 1})),
    "oversized sequence": frame(2013, op_msg({"ping": 1})[16:] + b"\x01\xff\x00\x00\x00x\x00"),
    "BSON larger than the message": frame(
        2013, b"\x00" * 5 + struct.pack("<i", 4096) + b"\x00" * 4
    ),
    "no body section": frame(2013, b"\x00" * 4 + b"\x01" + struct.pack("<i", 9) + b"docs\x00"),
    "query on a collection": frame(
        2004, b"\x00" * 4 + b"db.users\x00" + b"\x00" * 8 + bson.encode({})
    ),
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_closes_only_that_connection(
    garbage: bytes, raw: socket.socket, client: MongoClient[Doc], caplog: pytest.LogCaptureFixture
) -> None:
    raw.sendall(garbage)
    assert closed_by_peer(raw)
    assert client.admin.command("ping")["ok"] == 1.0
    assert "closing MongoDB wire connection" in caplog.text


# --- writes -------------------------------------------------------------------------------------


def test_crud_round_trip(db: Database[Doc]) -> None:
    users = db.users
    inserted = users.insert_one({"name": "ada", "n": 1}).inserted_id
    assert users.find_one({"_id": inserted}) == {"_id": inserted, "name": "ada", "n": 1}
    result = users.update_one({"name": "ada"}, {"$set": {"role": "admin"}, "$inc": {"n": 2}})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert users.find_one({"name": "ada"}, {"_id": 0}) == {"name": "ada", "n": 3, "role": "admin"}
    assert users.replace_one({"_id": inserted}, {"name": "bob"}).modified_count == 1
    assert users.find_one({"_id": inserted}) == {"_id": inserted, "name": "bob"}
    assert users.delete_one({"name": "bob"}).deleted_count == 1
    assert users.find_one({"_id": inserted}) is None


def test_upserts_multi_updates_pipelines_and_deletes(db: Database[Doc]) -> None:
    items = db.items
    upsert = items.update_one(
        {"sku": "a"}, {"$set": {"qty": 1}, "$setOnInsert": {"created": 1}}, upsert=True
    )
    assert upsert.upserted_id is not None
    assert upsert.matched_count == 0
    items.update_one(
        {"sku": "a"}, {"$set": {"qty": 2}, "$setOnInsert": {"created": 2}}, upsert=True
    )
    assert items.find_one({"sku": "a"}, {"_id": 0}) == {"sku": "a", "qty": 2, "created": 1}
    items.insert_many([{"sku": "b", "qty": 5}, {"sku": "c", "qty": 5}])
    assert items.update_many({"qty": 5}, {"$inc": {"qty": 1}}).modified_count == 2
    items.update_one({"sku": "c"}, [{"$set": {"double": {"$multiply": ["$qty", 2]}}}])
    assert items.find_one({"sku": "c"}, {"_id": 0, "double": 1}) == {"double": 12}
    assert items.delete_many({"qty": 6}).deleted_count == 2
    assert items.count_documents({}) == 1


def test_malformed_write_statements_are_refused(db: Database[Doc]) -> None:
    with pytest.raises(OperationFailure) as replace_many:
        db.command("update", "x", updates=[{"q": {}, "u": {"a": 1}, "multi": True}])
    with pytest.raises(OperationFailure) as delete_two:
        db.command("delete", "x", deletes=[{"q": {}, "limit": 2}])
    with pytest.raises(OperationFailure) as both:
        db.command("findAndModify", "x", query={}, remove=True, update={"$set": {"a": 1}})
    assert replace_many.value.code == delete_two.value.code == both.value.code == 9


def test_unique_index_violations_are_duplicate_key_errors(db: Database[Doc]) -> None:
    users = db.users
    users.create_index("address", unique=True)
    users.insert_one({"address": "T1"})
    with pytest.raises(DuplicateKeyError) as single:
        users.insert_one({"address": "T1"})
    assert single.value.code == 11000
    with pytest.raises(BulkWriteError) as ordered:
        users.insert_many([{"address": "T2"}, {"address": "T1"}, {"address": "T3"}])
    assert ordered.value.details["nInserted"] == 1
    assert ordered.value.details["writeErrors"][0]["index"] == 1
    with pytest.raises(BulkWriteError) as unordered:
        users.insert_many([{"address": "T1"}, {"address": "T4"}], ordered=False)
    assert unordered.value.details["nInserted"] == 1
    with pytest.raises(DuplicateKeyError):
        users.update_one({"address": "T2"}, {"$set": {"address": "T1"}})
    with pytest.raises(BulkWriteError) as unordered_updates:
        users.bulk_write(
            [
                UpdateOne({"address": "T2"}, {"$set": {"address": "T1"}}),
                UpdateOne({"address": "T4"}, {"$set": {"seen": True}}),
            ],
            ordered=False,
        )
    assert unordered_updates.value.details["nModified"] == 1
    with pytest.raises(DuplicateKeyError):
        users.find_one_and_update({"address": "T2"}, {"$set": {"address": "T1"}})
    with pytest.raises(DuplicateKeyError):
        users.find_one_and_update({"address": "T9"}, {"$set": {"address": "T1"}}, upsert=True)
    assert sorted(users.distinct("address")) == ["T1", "T2", "T4"]  # ordered: T3 never ran
    assert users.count_documents({}) == 3  # and no refused insert stayed behind


def test_an_insert_is_checked_and_stored_as_mongod_stores_it(db: Database[Doc]) -> None:
    # GIVEN inserts over the wire (the server skips mongomock's own re-encoding of them)
    stamps = db.stamps
    stamps.insert_one(
        {
            "_id": 1,
            "ts": Timestamp(0, 0),
            "at": datetime(2026, 12, 5, 2, 0),
            "in": [Timestamp(0, 0)],
        }
    )
    # THEN an empty timestamp is filled in at the top level, as mongod fills it in, and only
    # there (src/mongo/db/ops/insert.cpp, fixDocumentForInsert)
    stored = stamps.find_one({"_id": 1})
    assert stored is not None
    assert stored["ts"].time > 0
    assert stored["in"] == [Timestamp(0, 0)]
    # AND a top-level field starting with '$' is stored, as mongod 5.0+ stores it
    stamps.insert_one({"_id": 2, "$where": "x", "a": {"$b": 1}})
    assert stamps.find_one({"_id": 2}) == {"_id": 2, "$where": "x", "a": {"$b": 1}}
    # AND an _id document holding one at any depth is mongod's 52, and nothing is stored
    for refused in ({"$b": 1}, {"a": 1, "c": {"$d": 2}}):
        with pytest.raises(OperationFailure) as failure:
            stamps.insert_one({"_id": refused, "v": 1})
        dollar = "$b" if "$b" in refused else "$d"
        assert (failure.value.code, failure.value.details) == (
            52,
            {
                "index": 0,
                "code": 52,
                "errmsg": f"_id fields may not contain '$'-prefixed fields: {dollar} is not valid"
                " for storage.",
            },
        )
    # AND a taken _id is 11000 and leaves the stored document as it was
    with pytest.raises(DuplicateKeyError):
        stamps.insert_one({"_id": 1, "ts": Timestamp(5, 1)})
    assert stamps.find_one({"_id": 1}) == stored
    assert stamps.count_documents({}) == 2
    # AND a document without an _id gets one
    db.command("insert", "stamps", documents=[{"v": 3}])
    made = stamps.find_one({"v": 3})
    assert made is not None
    assert stamps.find_one({"_id": made["_id"]}) == made


def test_find_one_and_update_is_atomic_across_20_threads(server: EmbeddedMongo) -> None:
    # GIVEN 20 threads, each with its own connection from one pool, incrementing one counter
    seen: list[int] = []
    with connect(server.uri, maxPoolSize=20) as mongo:
        counters = mongo.atomic.counters
        counters.delete_many({})

        def bump() -> None:
            for _ in range(25):
                doc = counters.find_one_and_update(
                    {"_id": "c"},
                    {"$inc": {"n": 1}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                seen.append(doc["n"])

        threads = [threading.Thread(target=bump) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        # THEN no increment was lost and every caller saw a distinct value
        assert counters.find_one({"_id": "c"}) == {"_id": "c", "n": 500}
        assert sorted(seen) == list(range(1, 501))
        mongo.drop_database("atomic")


def test_find_one_and_friends(db: Database[Doc]) -> None:
    jobs: Collection[Doc] = db.jobs
    jobs.insert_many([{"_id": i, "p": i % 3, "state": "new"} for i in range(6)])
    first = jobs.find_one_and_update(
        {"state": "new"}, {"$set": {"state": "taken"}}, sort=[("p", -1), ("_id", 1)],
        projection={"state": 1},
    )  # fmt: skip
    assert first == {"_id": 2, "state": "new"}  # the document before the change, projected
    assert jobs.find_one_and_replace({"_id": 0}, {"state": "replaced"}, return_document=True) == {
        "_id": 0,
        "state": "replaced",
    }
    assert jobs.find_one_and_delete({"p": 1}, sort=[("_id", -1)], projection={"_id": 1}) == {
        "_id": 4
    }
    assert jobs.find_one_and_delete({"p": 7}) is None
    assert jobs.find_one_and_update({"p": 7}, {"$set": {"x": 1}}) is None
    assert jobs.find_one_and_update({"_id": 9}, {"$set": {"x": 1}}, upsert=True) is None
    created = jobs.find_one_and_update(
        {"_id": 10}, {"$set": {"x": 2}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert created == {"_id": 10, "x": 2}
    assert jobs.count_documents({}) == 7


def test_find_one_and_update_by_id_answers_the_document_before_or_after_the_change(
    db: Database[Doc],
) -> None:
    # GIVEN a document with dates, numbers and nested values (a findAndModify by `_id` works on
    # the stored document, not on mongomock's copies)
    moment = datetime(2026, 12, 5, 1, 0, 0, 125000, tzinfo=UTC)
    stored = {"_id": "s1", "owner_id": "o1", "v": 1, "at": moment, "meta": {"k": ["a"]}}
    db.sessions.insert_one(stored)
    as_read = db.sessions.find_one({"_id": "s1"})
    change = {"$set": {"meta.k": ["b"], "at": moment + timedelta(days=1)}, "$inc": {"v": 1}}
    # WHEN it is changed, answering the document as it was
    before = db.sessions.find_one_and_update({"_id": "s1", "owner_id": "o1", "v": 1}, change)
    # THEN that is the document before the change, exactly as a read gave it
    assert before == as_read
    # AND with return_document=AFTER it is the document after the change, as a read gives it
    after = db.sessions.find_one_and_update(
        {"_id": "s1", "owner_id": "o1"}, change, return_document=ReturnDocument.AFTER
    )
    assert after == db.sessions.find_one({"_id": "s1"})
    assert after is not None
    tomorrow = (moment + timedelta(days=1)).replace(tzinfo=None)  # this client is not tz-aware
    assert (after["v"], after["meta"], after["at"]) == (3, {"k": ["b"]}, tomorrow)
    # AND a query the document does not match changes nothing
    assert db.sessions.find_one_and_update({"_id": "s1", "v": 1}, change) is None
    assert db.sessions.find_one_and_update({"_id": "s1", "owner_id": "o2"}, change) is None
    # AND a removal answers the document it removed
    assert db.sessions.find_one_and_delete({"_id": "s1"}) == after
    assert db.sessions.find_one({"_id": "s1"}) is None


SESSION: Doc = {
    "_id": "s1", "owner_id": "o1", "name": "n", "status": "pending", "metadata": {"k": ["a"]},
    "created_at": datetime(2026, 12, 5, 1, 0, 0, 125000), "started_at": None, "version": 1,
    "score": 1.5, "label": "x", "big": Int64(2**40),
}  # fmt: skip
# (extra query, update, return_document): each applied by `_id` (the server changes the stored
# document itself) and again by a range on `_id`, which only a scan answers (mongomock's update)
WRITES: dict[str, tuple[Doc, Doc, bool]] = {
    "the PATCH, answering the document after": (
        {"owner_id": "o1", "version": 1},
        {
            "$set": {"name": "m", "metadata": {"k": ["b"]}, "updated_at": "<now>"},
            "$inc": {"version": 1},
        },
        True,
    ),
    "the PATCH, answering the document before": (
        {"owner_id": "o1", "version": 1},
        {"$set": {"name": "m"}, "$inc": {"version": 1}},
        False,
    ),
    "a new field and an unchanged one": ({}, {"$set": {"fresh": [1, {"a": 2}], "name": "n"}}, True),
    "nothing changes": ({}, {"$set": {"name": "n", "label": "x"}}, True),
    "$inc of a missing field, a float, an int by a float, an Int64": (
        {},
        {"$inc": {"count": 2, "score": 0.25, "version": 0.5, "big": 1}},
        True,
    ),
    "$setOnInsert on a match does nothing (the sign-in's)": (
        {},
        {"$set": {"name": "q"}, "$setOnInsert": {"_id": "zz", "made": 1, "a.b": 2}},
        True,
    ),
    "the owner does not match": ({"owner_id": "o2"}, {"$set": {"name": "q"}}, True),
    "the version does not match": ({"version": 7}, {"$inc": {"version": 1}}, True),
    "a '$ne' the document fails": ({"status": {"$ne": "pending"}}, {"$set": {"name": "q"}}, True),
    "a dotted path": ({}, {"$set": {"metadata.x": 1, "name": "q"}}, True),
    "another operator": ({}, {"$unset": {"label": ""}, "$set": {"name": "q"}}, True),
    "overlapping paths (40)": ({}, {"$set": {"version": 5}, "$inc": {"version": 1}}, True),
    "overlapping paths, no match (40)": (
        {"owner_id": "o2"},
        {"$set": {"version": 5}, "$inc": {"version": 1}},
        True,
    ),
    "an unknown operator (9)": ({}, {"$set": {"name": "q"}, "$bogus": {"a": 1}}, True),
    "$inc of a string before a $set (2)": ({}, {"$inc": {"name": 1}, "$set": {"score": 2}}, True),
    "a unique value taken (11000)": ({}, {"$set": {"name": "q", "label": "y"}}, True),
    "a '$' field (52)": ({}, {"$set": {"name": "q", "$bad": 1}}, True),
}


def _write_twice(
    collection: Collection[Doc], query: Doc, change: Doc, after: bool
) -> tuple[Any, Any]:
    """What findAndModify answers, then what update answers (or their errors)."""
    return (
        _outcome(lambda: collection.find_one_and_update(query, change, return_document=after)),
        _outcome(lambda: collection.update_one(query, change).raw_result),
    )


def _outcome(action: Any) -> Any:
    try:
        return action()
    except OperationFailure as error:
        return type(error).__name__, error.code, str(error)


@pytest.mark.parametrize(("scope", "change", "after"), WRITES.values(), ids=list(WRITES))
def test_a_write_by_id_answers_and_stores_exactly_what_mongomock_does(
    db: Database[Doc], scope: Doc, change: Doc, after: bool
) -> None:
    # GIVEN twin collections holding the same documents, with a unique index
    twins = db.by_id, db.scanned
    for twin in twins:
        twin.create_index("label", unique=True)
        twin.insert_many([dict(SESSION), {"_id": "s2", "owner_id": "o1", "label": "y"}])
    by_id, scanned = {"_id": "s1", **scope}, {"_id": {"$gte": "s1", "$lte": "s1"}, **scope}
    now = datetime.now(UTC)  # "<now>": a date built when the test runs, the same for both
    change = {
        operator: {key: now if value == "<now>" else value for key, value in fields.items()}
        if isinstance(fields, dict)
        else fields
        for operator, fields in change.items()
    }
    # WHEN one is changed by findAndModify and update by `_id`, the other by a scan
    answers = [
        _write_twice(twin, query, change, after)
        for twin, query in zip(twins, (by_id, scanned), strict=True)
    ]
    # THEN the answers (document before or after, counts, errors) are the same
    assert answers[0] == answers[1]
    # AND so are the documents stored, and what the unique index finds
    assert list(twins[0].find()) == list(twins[1].find())
    for label in ("x", "y", "q"):
        assert [d["_id"] for d in twins[0].find({"label": label})] == [
            d["_id"] for d in twins[1].find({"label": label})
        ]


def test_a_write_by_id_refuses_a_dollar_field_and_leaves_the_document_as_it_was(
    db: Database[Doc],
) -> None:
    db.w.insert_one({"_id": "s1", "name": "n"})
    # WHEN an update would store a top-level '$' field (after another field, before it)
    changes: list[dict[str, dict[str, Any]]] = [
        {"$set": {"name": "q", "$bad": 1}},
        {"$inc": {"$n": 1}, "$set": {"name": "q"}},
    ]
    for change in changes:
        for write in (db.w.update_one, db.w.find_one_and_update):
            with pytest.raises(OperationFailure) as failure:
                write({"_id": "s1"}, change)
            # THEN it is mongod's 52 DollarPrefixedFieldName, in the words of mongod 5.0 and
            # later, and nothing was changed
            bad = next(field for fields in change.values() for field in fields if field[0] == "$")
            assert failure.value.code == 52
            assert (failure.value.details or {})["errmsg"] == (
                f"The dollar ($) prefixed field '{bad}' in '{bad}' is not allowed in the context"
                " of an update's replacement document. Consider using an aggregation pipeline"
                " with $replaceWith."
            )
            assert db.w.find_one({"_id": "s1"}) == {"_id": "s1", "name": "n"}
    # AND where no document matches it changes nothing and is not refused, as mongod
    assert db.w.update_one({"_id": "s9"}, {"$set": {"$bad": 1}}).matched_count == 0
    # AND arrayFilters are still refused (mongomock has none), not ignored
    for write in (db.w.update_one, db.w.find_one_and_update):
        with pytest.raises(OperationFailure) as failure:
            write({"_id": "s1"}, {"$set": {"name": "q"}}, array_filters=[{"e": 1}])
        assert failure.value.code == 238
    assert db.w.find_one({"_id": "s1"}) == {"_id": "s1", "name": "n"}
    # AND an upsert by `_id` that matches nothing inserts
    assert db.w.update_one({"_id": "s7"}, {"$set": {"name": "u"}}, upsert=True).upserted_id == "s7"
    assert db.w.find_one({"_id": "s7"}) == {"_id": "s7", "name": "u"}
    # AND an empty timestamp a $set stores is filled in, as mongomock fills it in
    db.w.update_one({"_id": "s1"}, {"$set": {"ts": Timestamp(0, 0)}})
    stored = db.w.find_one({"_id": "s1"})
    assert stored is not None
    assert stored["ts"].time > 0


# The queries of one document: by `_id` (served on the stored document, as the gateway's
# writes), and two that mongomock answers (a scan of `_id`, a lookup by another field).
ONE_DOCUMENT: dict[str, Doc] = {
    "by id": {"_id": "s1"},
    "scanned": {"_id": {"$gte": "s1", "$lte": "s1"}},
    "by name": {"name": "n"},
}
# What mongod refuses for the stored document {_id: "s1", name: "n", s: "text", n: 1,
# p: {q: 1, flag: true}}, in its words (mongodb/mongo src/mongo/db/update/*_node.cpp; the codes
# of src/mongo/base/error_codes.yml), each after a `$set` that must not stay applied.
REFUSED_FOR_THE_DOCUMENT = {
    "$inc of a string": (
        {"$set": {"name": "q", "p.q": 2}, "$inc": {"n": 1, "s": 1}},
        14,
        "Cannot apply $inc to a value of non-numeric type. {_id: \"s1\"} has the field 's' of"
        " non-numeric type string",
    ),
    "$inc of a nested bool": (
        {"$set": {"name": "q"}, "$inc": {"p.flag": 1}},
        14,
        "Cannot apply $inc to a value of non-numeric type. {_id: \"s1\"} has the field 'flag'"
        " of non-numeric type bool",
    ),
    "$mul of a string": (
        {"$set": {"name": "q"}, "$mul": {"n": 2, "s": 2}},
        14,
        "Cannot apply $mul to a value of non-numeric type. {_id: \"s1\"} has the field 's' of"
        " non-numeric type string",
    ),
    "$pop of a string": (
        {"$set": {"name": "q"}, "$inc": {"n": 1}, "$pop": {"s": 1}},
        14,
        "Path 's' contains an element of non-array type 'string'",
    ),
    "$push onto a string": (
        {"$set": {"name": "q"}, "$push": {"s": 1}},
        2,
        "The field 's' must be an array but is of type string in document {_id: \"s1\"}",
    ),
    "$push onto a nested bool": (
        {"$set": {"name": "q"}, "$push": {"p.flag": 1}},
        2,
        "The field 'p.flag' must be an array but is of type bool in document {_id: \"s1\"}",
    ),
    "$addToSet to a string": (
        {"$set": {"name": "q"}, "$addToSet": {"s": 1}},
        2,
        "Cannot apply $addToSet to non-array field. Field named 's' has non-array type string",
    ),
    "$pull from a string": (
        {"$set": {"name": "q"}, "$pull": {"s": "t"}},
        2,
        "Cannot apply $pull to a non-array value",
    ),
    "$pullAll from a number": (
        {"$set": {"name": "q"}, "$pullAll": {"n": [1]}},
        2,
        "Cannot apply $pull to a non-array value",
    ),
    "$bit of a string": (
        {"$set": {"name": "q"}, "$bit": {"n": {"or": 2}, "s": {"and": 1}}},
        2,
        'Cannot apply $bit to a value of non-integral type._id: "s1" has the field s of'
        " non-integer type string",
    ),
    "$set through a string": (
        {"$set": {"name": "q", "s.a": 1}},
        28,
        "Cannot create field 'a' in element {s: \"text\"}",
    ),
    "$inc through a nested number": (
        {"$set": {"name": "q"}, "$inc": {"p.q.r": 1}},
        28,
        "Cannot create field 'r' in element {q: 1}",
    ),
    "$set of _id": (
        {"$set": {"name": "q", "_id": "s2"}},
        66,
        "Updating the path '_id' to _id: \"s2\" would modify the immutable field '_id'",
    ),
}
CODE_NAMES = {2: "BadValue", 9: "FailedToParse", 14: "TypeMismatch", 28: "PathNotViable"}
CODE_NAMES[66] = "ImmutableField"


@pytest.mark.parametrize("query", ONE_DOCUMENT.values(), ids=list(ONE_DOCUMENT))
@pytest.mark.parametrize(
    ("change", "code", "message"),
    REFUSED_FOR_THE_DOCUMENT.values(),
    ids=list(REFUSED_FOR_THE_DOCUMENT),
)
def test_an_update_refused_for_a_document_changes_nothing_of_it(
    db: Database[Doc], query: Doc, change: Doc, code: int, message: str
) -> None:
    stored = {"_id": "s1", "name": "n", "s": "text", "n": 1, "p": {"q": 1, "flag": True}}
    db.w.insert_one(dict(stored))
    for write in ("update_one", "update_many", "find_one_and_update"):
        # WHEN an update sets fields, then meets what mongod refuses for this document
        with pytest.raises(OperationFailure) as refused:
            getattr(db.w, write)(query, change)
        # THEN it is refused as mongod refuses it (its code, in its words), and nothing of it
        # was applied: mongod applies an update to a document all or nothing
        details = refused.value.details or {}
        assert (refused.value.code, details["errmsg"]) == (code, message)
        if write == "find_one_and_update":  # a command's failure names its code
            assert details["codeName"] == CODE_NAMES[code]
        else:  # a write error does not: mongod's WriteError::serialize writes index, code,
            # errmsg (src/mongo/db/ops/write_ops.cpp)
            assert set(details) == {"index", "code", "errmsg"}
        assert db.w.find_one({"_id": "s1"}) == stored, write
        assert db.w.find_one({"name": "n"}) == stored  # still filed under its name
    # AND where no document matches, nothing is refused: mongod refuses it for a document
    assert db.w.update_one({"_id": "s9"}, change).matched_count == 0


# What mongod refuses when it parses an update, whether or not a document matches.
REFUSED_WHEN_PARSED = {
    "$inc by a string": (
        {"$inc": {"s": "x"}},
        14,
        'Cannot increment with non-numeric argument: {s: "x"}',
    ),
    "$mul by a string": (
        {"$mul": {"n": "x"}},
        14,
        'Cannot multiply with non-numeric argument: {n: "x"}',
    ),
    "$pop by 2": ({"$pop": {"a": 2}}, 9, "$pop expects 1 or -1, found: 2"),
    "$pop by -2.0": ({"$pop": {"a": -2.0}}, 9, "$pop expects 1 or -1, found: -2"),
    "$rename to a number": (
        {"$rename": {"s": 1}},
        2,
        "The 'to' field for $rename must be a string: s: 1",
    ),
    "$bit of a number": (
        {"$bit": {"n": 1}},
        2,
        "The $bit modifier is not compatible with a int. You must pass in an embedded document:"
        " {$bit: {field: {and/or/xor: #}}",
    ),
    "$bit with another operation": (
        {"$bit": {"n": {"and": 1, "not": 1}}},
        2,
        "The $bit modifier only supports 'and', 'or', and 'xor', not 'not' which is an unknown"
        " operator: {not: 1}",
    ),
    "$bit by a double": (
        {"$bit": {"n": {"or": 1.5}}},
        2,
        "The $bit modifier field must be an Integer(32/64 bit); a 'double' is not supported here:"
        " {or: 1.5}",
    ),
    "$bit of no operation": (
        {"$bit": {"n": {}}},
        2,
        "You must pass in at least one bitwise operation. The format is: {$bit: {field:"
        " {and/or/xor: #}}",
    ),
    "$currentDate of a number": (
        {"$currentDate": {"d": 1}},
        2,
        "int is not valid type for $currentDate. Please use a boolean ('true') or a $type"
        " expression ({$type: 'timestamp/date'}).",
    ),
    "$currentDate of another $type": (
        {"$currentDate": {"d": {"$type": "day"}}},
        2,
        "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate:"
        " {field : {$type: 'date'}}}",
    ),
    "$currentDate with another option": (
        {"$currentDate": {"d": {"$type": "date", "tz": "UTC"}}},
        2,
        "Unrecognized $currentDate option: tz",
    ),
}


@pytest.mark.parametrize(
    ("change", "code", "message"), REFUSED_WHEN_PARSED.values(), ids=list(REFUSED_WHEN_PARSED)
)
def test_an_update_mongod_cannot_parse_is_refused_whether_or_not_a_document_matches(
    db: Database[Doc], change: Doc, code: int, message: str
) -> None:
    stored = {"_id": "s1", "name": "n", "s": "text", "n": 1, "a": [1, 2]}
    db.w.insert_one(dict(stored))
    for query in ({"_id": "s1"}, {"name": "n"}, {"_id": "s9"}, {"name": "none"}):
        for write in (db.w.update_one, db.w.update_many, db.w.find_one_and_update):
            with pytest.raises(OperationFailure) as refused:
                write(query, {"$set": {"name": "q"}, **change})
            details = refused.value.details or {}
            assert (refused.value.code, details["errmsg"]) == (code, message), (query, write)
    assert db.w.find_one({"_id": "s1"}) == stored


def _typed(document: Doc | None) -> Doc:
    """A document's values with their types: 1, 1.0 and Int64(1) are three answers."""
    assert document is not None
    return {key: (type(value).__name__, value) for key, value in document.items()}


# Updates mongod applies, and what it stores: (stored fields, update, fields after, whether
# the document was modified). Types as safe_num.cpp makes them: an int and a long make a
# long, anything and a double a double, anything and a decimal a decimal.
APPLIED = {
    "$mul of an int": ({"n": 3}, {"$mul": {"n": 2}}, {"n": 6}, True),
    "$mul of an int past 32 bits": ({"n": 2**30}, {"$mul": {"n": 4}}, {"n": Int64(2**32)}, True),
    "$mul of an int by a double": ({"n": 3}, {"$mul": {"n": 0.5}}, {"n": 1.5}, True),
    "$mul of a long": ({"n": Int64(3)}, {"$mul": {"n": 2}}, {"n": Int64(6)}, True),
    "$mul by 1": ({"n": 3}, {"$mul": {"n": 1}}, {"n": 3}, False),
    "$mul of a missing field by an int": ({}, {"$mul": {"m": 5}}, {"m": 0}, True),
    "$mul of a missing field by a double": ({}, {"$mul": {"m": 2.5}}, {"m": 0.0}, True),
    "$mul of a missing field by a long": ({}, {"$mul": {"m": Int64(2)}}, {"m": Int64(0)}, True),
    "$mul of a missing nested field": ({}, {"$mul": {"p.m": 2}}, {"p": {"m": 0}}, True),
    "$mul of a missing field by a decimal": (
        {},
        {"$mul": {"m": Decimal128("1.5")}},
        {"m": Decimal128("0.0")},
        True,
    ),
    "$mul of decimals": (
        {"d": Decimal128("1.5")},
        {"$mul": {"d": Decimal128("2")}},
        {"d": Decimal128("3.0")},
        True,
    ),
    "$inc of a decimal": (
        {"d": Decimal128("1.5")},
        {"$inc": {"d": 1}},
        {"d": Decimal128("2.5")},
        True,
    ),
    "$inc of an int by a decimal": (
        {"n": 1},
        {"$inc": {"n": Decimal128("0.1")}},
        {"n": Decimal128("1.1")},
        True,
    ),
    "$inc of a long": ({"n": Int64(5)}, {"$inc": {"n": 1}}, {"n": Int64(6)}, True),
    "$inc of an int past 32 bits": (
        {"n": 2**31 - 1},
        {"$inc": {"n": 1}},
        {"n": Int64(2**31)},
        True,
    ),
    "$bit and, or, xor of an int": (
        {"n": 0b1100},
        {"$bit": {"n": {"and": 0b1010, "or": 0b0001, "xor": 0b0100}}},
        {"n": 0b1101},
        True,
    ),
    "$bit of an int by a long": (
        {"n": 5},
        {"$bit": {"n": {"or": Int64(2)}}},
        {"n": Int64(7)},
        True,
    ),
    "$bit that changes nothing": ({"n": 5}, {"$bit": {"n": {"or": 1}}}, {"n": 5}, False),
    "$bit of a missing field": ({}, {"$bit": {"m": {"or": 6, "and": 3}}}, {"m": 2}, True),
    "$min of a string by a number": ({"s": "x"}, {"$min": {"s": 1}}, {"s": 1}, True),
    "$max of a string by a number": ({"s": "x"}, {"$max": {"s": 1}}, {"s": "x"}, False),
    "$min of null by a number": ({"s": None}, {"$min": {"s": 1}}, {"s": None}, False),
    "$max of null by a number": ({"s": None}, {"$max": {"s": 1}}, {"s": 1}, True),
    "$min of an int by a smaller decimal": (
        {"n": 3},
        {"$min": {"n": Decimal128("2.5")}},
        {"n": Decimal128("2.5")},
        True,
    ),
    "$max of an int by an equal double": ({"n": 3}, {"$max": {"n": 3.0}}, {"n": 3}, False),
    "$min of a bool by a date": ({"b": True}, {"$min": {"b": "<date>"}}, {"b": True}, False),
    "$pop of a missing field": ({}, {"$pop": {"a": 1}}, {}, False),
    "$pull through a string": ({"s": "x"}, {"$pull": {"s.a": 1}}, {"s": "x"}, False),
}
DATE = datetime(2026, 1, 2, 3, 4, 5, 6000)


@pytest.mark.parametrize("query", ONE_DOCUMENT.values(), ids=list(ONE_DOCUMENT))
@pytest.mark.parametrize(
    ("fields", "change", "after", "modified"), APPLIED.values(), ids=list(APPLIED)
)
def test_an_update_stores_what_mongod_stores(
    db: Database[Doc], query: Doc, fields: Doc, change: Doc, after: Doc, modified: bool
) -> None:
    change = {
        operator: {path: DATE if value == "<date>" else value for path, value in paths.items()}
        for operator, paths in change.items()
    }
    for write in ("update_one", "update_many", "find_one_and_update"):
        db.w.delete_many({})
        db.w.insert_one({"_id": "s1", "name": "n", **fields})
        # WHEN the document is updated
        if write == "find_one_and_update":
            answer = db.w.find_one_and_update(query, change, return_document=ReturnDocument.AFTER)
            # THEN findAndModify answers the document mongod stores
            assert _typed(answer) == _typed({"_id": "s1", "name": "n", **after})
        else:
            result = getattr(db.w, write)(query, change)
            # THEN update counts the document as mongod counts it
            assert (result.matched_count, result.modified_count) == (1, int(modified))
        # AND it holds what mongod stores, with mongod's types
        assert _typed(db.w.find_one({"_id": "s1"})) == _typed({"_id": "s1", "name": "n", **after})


def test_an_upsert_applies_the_operators_to_the_document_it_makes(db: Database[Doc]) -> None:
    # WHEN an upsert that matches nothing names operators mongomock lacks or refused
    change = {"$mul": {"m": 2}, "$inc": {"d": Decimal128("1.5")}, "$pop": {"a": 1}}
    result = db.w.update_one({"_id": "u1", "k": "q"}, change, upsert=True)
    # THEN the document is made from the query, with what mongod makes of them
    assert result.upserted_id == "u1"
    assert _typed(db.w.find_one({"_id": "u1"})) == _typed(
        {"_id": "u1", "k": "q", "m": 0, "d": Decimal128("1.5")}
    )
    # AND a refusal makes nothing
    with pytest.raises(OperationFailure) as refused:
        db.w.update_one({"_id": "u2", "s": "x"}, {"$push": {"s": 1}}, upsert=True)
    assert refused.value.code == 2
    assert db.w.find_one({"_id": "u2"}) is None


def test_an_update_of_a_stored_id_is_refused_in_mongods_words(db: Database[Doc]) -> None:
    db.w.insert_one({"_id": 7, "name": "n"})
    changing = "Performing an update on the path '_id' would modify the immutable field '_id'"
    refusals: list[tuple[Doc, str]] = [
        ({"$set": {"name": "q", "_id": 8}}, "Updating the path '_id' to _id: 8 would modify"),
        ({"$max": {"_id": 9}}, "Updating the path '_id' to _id: 9 would modify"),
        ({"$min": {"_id": 2.5}}, "Updating the path '_id' to _id: 2.5 would modify"),
        ({"$inc": {"_id": 1}}, changing),
        ({"$mul": {"_id": 2}}, changing),
        ({"$set": {"name": "q"}, "$unset": {"_id": ""}}, changing),
    ]
    for change, words in refusals:
        for write in ("update_one", "find_one_and_update"):
            # WHEN an update would change the stored document's _id
            with pytest.raises(OperationFailure) as refused:
                getattr(db.w, write)({"_id": 7}, change)
            # THEN it is mongod's 66 ImmutableField, and nothing changed
            assert refused.value.code == 66
            assert (refused.value.details or {})["errmsg"].startswith(words), change
            assert db.w.find_one({"name": "n"}) == {"_id": 7, "name": "n"}
    # AND one that leaves it as it is applies, as mongod's does
    for change in ({"$set": {"_id": 7}}, {"$inc": {"_id": 0}}, {"$max": {"_id": 3}}):
        result = db.w.update_one(
            {"_id": 7}, {**change, "$set": {"name": "n", **change.get("$set", {})}}
        )
        assert (result.matched_count, result.modified_count) == (1, 0), change
    assert _typed(db.w.find_one({"name": "n"})) == _typed({"_id": 7, "name": "n"})


def test_an_update_past_64_bits_is_refused_and_the_document_stays_readable(
    db: Database[Doc],
) -> None:
    stored = {"_id": "s1", "big": Int64(2**63 - 1), "small": Int64(-(2**62)), "name": "n"}
    db.w.insert_one(dict(stored))
    for change in (
        {"$inc": {"big": 1}},
        {"$mul": {"small": 4}},
        {"$inc": {"small": Int64(-(2**63))}},
    ):
        for write in ("update_one", "update_many", "find_one_and_update"):
            # WHEN an $inc or $mul of a long would leave 64 bits
            with pytest.raises(OperationFailure) as refused:
                getattr(db.w, write)({"name": "n"}, {"$set": {"name": "n"}, **change})
            # THEN it is refused as mongod refuses it, and the document is still served as it was
            assert refused.value.code == 12
            details = refused.value.details or {}
            assert details["errmsg"] == "Don't know how to handle unexpected SafeNum type"
            assert _typed(db.w.find_one({"_id": "s1"})) == _typed(stored)


def test_a_multi_update_failing_part_way_answers_as_mongod(db: Database[Doc]) -> None:
    # GIVEN five documents, the fourth of which an $inc refuses
    documents: list[Doc] = [{"_id": i, "v": 1} for i in range(3)]
    documents += [{"_id": 3, "v": "x"}, {"_id": 4, "v": 1}]
    for ordered in (True, False):
        db.m.delete_many({})
        db.m.insert_many([dict(d) for d in documents])
        # WHEN one update command increments them all, then sets a field of the last
        reply = db.command(
            "update",
            "m",
            updates=[
                {"q": {}, "u": {"$inc": {"v": 1}}, "multi": True},
                {"q": {"_id": 4}, "u": {"$set": {"w": 1}}},
            ],
            ordered=ordered,
        )
        # THEN the documents before the refused one stay updated, it and those after it do
        # not: mongod does not roll back a multi-update (its documents are updated one by one)
        assert [d["v"] for d in db.m.find()] == [2, 2, 2, "x", 1]
        # AND the reply counts no document for the failed statement, as mongod's does (its
        # result is the error alone: SERVER-8537 "Incorrect result numbers for partial updates
        # if there is an error", open; the write error carries no codeName)
        assert reply["writeErrors"] == [
            {
                "index": 0,
                "code": 14,
                "errmsg": "Cannot apply $inc to a value of non-numeric type. {_id: 3} has the"
                " field 'v' of non-numeric type string",
            }
        ]
        # AND an ordered batch stops there, an unordered one applies and counts the next
        counted = 0 if ordered else 1
        assert (reply["n"], reply["nModified"]) == (counted, counted)
        assert ("w" in (db.m.find_one({"_id": 4}) or {})) is not ordered


# --- reads --------------------------------------------------------------------------------------


def test_cursor_batches_over_1000_documents(server: EmbeddedMongo) -> None:
    log = CommandLog()
    with connect(server.uri, event_listeners=[log]) as mongo:
        many = mongo.batches.many
        many.drop()
        many.insert_many([{"i": i} for i in range(1000)])
        log.names.clear()
        assert [doc["i"] for doc in many.find().sort("i", 1).batch_size(100)] == list(range(1000))
        assert log.names == ["find"] + ["getMore"] * 9
        log.names.clear()
        assert len(list(many.find({}, {"_id": 0}))) == 1000  # 101 first, the rest in one getMore
        assert log.names == ["find", "getMore"]
        mongo.drop_database("batches")


def test_exhaust_cursors_are_served_batch_by_batch(db: Database[Doc]) -> None:
    db.many.insert_many([{"i": i} for i in range(250)])
    exhaust = db.many.find(cursor_type=CursorType.EXHAUST).batch_size(50)
    assert [doc["i"] for doc in exhaust] == list(range(250))


def test_transactions_are_refused_like_a_standalone_server(
    client: MongoClient[Doc], db: Database[Doc]
) -> None:
    with (
        client.start_session() as session,
        pytest.raises(OperationFailure) as refused,
        session.start_transaction(),
    ):
        db.ledger.insert_one({"amount": 5}, session=session)
    assert refused.value.code == 20
    assert db.ledger.count_documents({}) == 0  # nothing half-applied


def test_closed_cursors_are_killed(db: Database[Doc]) -> None:
    db.docs.insert_many([{"i": i} for i in range(30)])
    cursor = db.docs.find().batch_size(10)
    next(cursor)
    cursor_id = cursor.cursor_id
    assert cursor_id is not None
    cursor.close()
    with pytest.raises(OperationFailure) as gone:
        db.command("getMore", Int64(cursor_id), collection="docs")
    assert gone.value.code == 43
    killed = db.command("killCursors", "docs", cursors=[Int64(cursor_id)])
    assert killed["cursorsNotFound"] == [cursor_id]


def test_sort_skip_limit_and_projection(db: Database[Doc]) -> None:
    db.scores.insert_many([{"i": i, "even": i % 2 == 0} for i in range(50)])
    page = db.scores.find({"even": True}, {"_id": 0, "i": 1}).sort("i", -1).skip(3).limit(4)
    assert list(page) == [{"i": 42}, {"i": 40}, {"i": 38}, {"i": 36}]
    assert db.scores.find_one({}, {"_id": 0}, sort=[("i", -1)]) == {"i": 49, "even": False}
    assert len(list(db.scores.find().limit(-5))) == 5  # negative limit: one batch


def test_sort_directions_other_than_1_and_minus_1_are_refused_like_mongodb(
    db: Database[Doc],
) -> None:
    # A real server parses every sort key (src/mongo/db/query/sort_pattern.cpp, SortPattern):
    # a non-number is 15974 "Illegal key in $sort specification", a number whose integer part
    # is not 1 or -1 is 15975; find and findAndModify alike. mongomock sorted by anything.
    db.scores.insert_many([{"i": i} for i in range(3)])
    for direction in (2, -2, 0, Int64(2**40)):
        with pytest.raises(OperationFailure) as wrong:
            list(db.scores.find(sort=[("i", direction)]))
        assert wrong.value.code == 15975
        assert wrong.value.details is not None
        assert wrong.value.details["codeName"] == "Location15975"
        with pytest.raises(OperationFailure) as modify:
            db.scores.find_one_and_update({}, {"$set": {"x": 1}}, sort=[("i", direction)])
        assert modify.value.code == 15975
    for number in (42.5, 0.5, float("nan"), float("inf"), Decimal128("2")):
        with pytest.raises(OperationFailure) as double:
            db.command("find", "scores", sort={"i": number})
        assert double.value.code == 15975
    for other in ("asc", True, None):
        with pytest.raises(OperationFailure, match=r"Illegal key in \$sort specification: i"):
            db.command("find", "scores", sort={"i": other})
    with pytest.raises(OperationFailure, match="not supported by the embedded MongoDB"):
        db.command("find", "scores", sort={"i": {"$meta": "textScore"}})
    assert db.scores.count_documents({"x": {"$exists": True}}) == 0  # no refused update wrote
    # What the server accepts: 1 and -1 as any numeric type (a double's fraction is dropped).
    for down in (-1, -1.0, -1.5, Int64(-1), Decimal128("-1")):
        found = db.command("find", "scores", sort={"i": down})["cursor"]["firstBatch"]
        assert [d["i"] for d in found] == [2, 1, 0]
    assert [d["i"] for d in db.scores.find(sort=[("i", Int64(1))])] == [0, 1, 2]
    # AND a $sort stage of a pipeline is parsed the same way (and may not be empty: 15976)
    for stage, code in (({"i": 2}, 15975), ({"i": "asc"}, 15974), ({}, 15976)):
        with pytest.raises(OperationFailure) as staged:
            list(db.scores.aggregate([{"$sort": stage}]))
        assert staged.value.code == code
    assert [d["i"] for d in db.scores.aggregate([{"$sort": {"i": -1.0}}])] == [2, 1, 0]


def test_aggregate_count_and_distinct(db: Database[Doc]) -> None:
    db.sales.insert_many([{"shop": s, "amount": a} for s, a in [("a", 5), ("b", 7), ("a", 3)]])
    totals = db.sales.aggregate(
        [{"$group": {"_id": "$shop", "total": {"$sum": "$amount"}}}, {"$sort": {"_id": 1}}]
    )
    assert list(totals) == [{"_id": "a", "total": 8}, {"_id": "b", "total": 7}]
    assert db.sales.count_documents({"shop": "a"}) == 2
    assert db.sales.estimated_document_count() == 3
    assert db.command("count", "sales", query={"amount": {"$gt": 1}}, skip=1, limit=5)["n"] == 2
    assert sorted(db.sales.distinct("amount", {"shop": "a"})) == [3, 5]


def test_datetimes_keep_milliseconds_and_the_client_chooses_awareness(
    server: EmbeddedMongo, db: Database[Doc]
) -> None:
    moment = datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=UTC)
    db.events.insert_one({"_id": 1, "at": moment})
    naive = datetime(2026, 11, 26, 12, 30, 15, 123000)
    assert db.events.find_one({"at": {"$gt": moment - timedelta(seconds=1)}}) == {
        "_id": 1,
        "at": naive,
    }
    with connect(server.uri, tz_aware=True) as aware:
        assert aware[db.name].events.find_one() == {
            "_id": 1,
            "at": moment.replace(microsecond=123000),
        }


PROJECTIONS: list[dict[str, Any]] = [
    {"_id": 1}, {"owner_id": 1}, {"owner_id": True, "_id": 0}, {"code": 1, "_id": 1},
    {"absent": 1}, {"_id": 0}, {"owner_id": 0}, {"nested.bin": 1}, {"tags": {"$slice": 1}},
]  # fmt: skip


NUMBER_FILTERS: list[Doc] = [
    {"v": 3}, {"v": 4}, {"f": 2}, {"f": 3}, {"x": 1}, {"flag": 1}, {"s": 1}, {"absent": 3},
    {"ints": 2}, {"ints": 3}, {"n": 2**40}, {"code": "7", "v": 3}, {"v": 3, "f": 1},
]  # fmt: skip


def test_a_read_by_id_answers_exactly_as_a_query_does(
    server: EmbeddedMongo, db: Database[Doc]
) -> None:
    # GIVEN documents of every kind of value (find_one by `_id` is served from the stored
    # document itself, any other find from mongomock's copies)
    moment = datetime(2026, 12, 2, 23, 0, 1, 250000, tzinfo=UTC)
    stored = {
        "_id": "a", "owner_id": "o1", "at": moment, "n": Int64(2**40), "x": 1.5, "none": None,
        "nested": {"list": [1, {"at": moment}], "bin": bson.Binary(b"\x00\x01")},
        "tags": ["red", "blue"], "code": "7", "v": 3, "f": 2.0, "flag": True, "s": "1",
        "ints": [1, 2],
    }  # fmt: skip
    db.things.insert_many([stored, {"_id": "b", "owner_id": "o2"}])
    for tz_aware in (False, True):
        with connect(server.uri, tz_aware=tz_aware) as mongo:
            things = mongo[db.name].things
            # WHEN it is read by `_id` THEN it is what a query matching it yields
            by_id = things.find_one({"_id": "a"})
            assert by_id == next(things.find({"n": {"$gt": 0}}))
            assert by_id is not None
            assert by_id["nested"]["list"][1]["at"].tzinfo == by_id["at"].tzinfo
            # AND the rest of the filter still applies, and a malformed one is still refused
            assert things.find_one({"_id": "a", "owner_id": "o2"}) is None
            assert things.find_one({"_id": "a", "owner_id": "o1"}) == by_id
            assert things.find_one({"_id": "missing"}) is None
            # AND a string matches an array holding it, never another type nor a missing field
            assert things.find_one({"_id": "a", "tags": "blue"}) == by_id
            assert things.find_one({"_id": "a", "owner_id": "o1", "tags": "green"}) is None
            assert things.find_one({"_id": "a", "code": "7", "n": str(2**40)}) is None
            assert things.find_one({"_id": "a", "code": 7}) is None
            assert things.find_one({"_id": "a", "code": "7", "absent": "7"}) is None
            assert things.find_one({"_id": "a", "code": "7", "owner_id": "o1"}) == by_id
            # AND an int matches an int or a float of its value, never a boolean, a string or
            # a missing field, and an array holding it, as a scanned query matches them
            for numbers in NUMBER_FILTERS:
                assert things.find_one({"_id": "a", **numbers}) == next(
                    things.find({"_id": {"$gte": "a", "$lte": "a"}, **numbers}), None
                ), numbers
            # AND a projection keeps what it keeps on any query (MongoDB's order: _id first)
            for projection in PROJECTIONS:
                projected = things.find_one({"_id": "a"}, projection)
                assert projected == next(things.find({"n": {"$gt": 0}}, projection))
            assert list(things.find_one({"_id": "a"}, {"code": 1, "owner_id": True}) or ()) == [
                "_id", "owner_id", "code"
            ]  # fmt: skip
            with pytest.raises(OperationFailure):
                things.find_one({"_id": "a", "n": {"$bogus": 1}})
    # AND what a read returned is not changed by a later write
    before = db.things.find_one({"_id": "a"})
    db.things.update_one({"_id": "a"}, {"$set": {"owner_id": "o3"}})
    assert before is not None
    assert before["owner_id"] == "o1"
    assert db.things.find_one({"_id": "a"}, {"owner_id": 1}) == {"_id": "a", "owner_id": "o3"}


# --- collections, databases, indexes ------------------------------------------------------------


def test_collections_and_databases(client: MongoClient[Doc], db: Database[Doc]) -> None:
    db.create_collection("made")
    with pytest.raises(OperationFailure) as exists:
        db.create_collection("made", check_exists=False)
    assert exists.value.code == 48
    db.other.insert_one({})
    assert db.list_collection_names() == ["made", "other"]
    assert db.list_collection_names(filter={"name": "other"}) == ["other"]
    assert [c["name"] for c in db.list_collections()] == ["made", "other"]
    assert db.name in client.list_database_names()
    assert [d["name"] for d in client.list_databases(filter={"name": db.name})] == [db.name]
    db.drop_collection("made")
    db.drop_collection("never-existed")  # pymongo ignores NamespaceNotFound
    assert db.list_collection_names() == ["other"]
    client.drop_database(db.name)
    assert db.name not in client.list_database_names()


def test_indexes(db: Database[Doc]) -> None:
    tokens = db.tokens
    assert tokens.create_index("expires", expireAfterSeconds=0) == "expires_1"
    assert tokens.create_index("expires", expireAfterSeconds=0) == "expires_1"  # idempotent
    tokens.create_index([("family", 1), ("user", -1)], unique=True)
    info = tokens.index_information()
    assert info["expires_1"]["expireAfterSeconds"] == 0
    assert info["family_1_user_-1"]["unique"] is True
    with pytest.raises(OperationFailure) as conflict:
        tokens.create_index("expires", expireAfterSeconds=60)
    assert conflict.value.code == 85
    created = db.command("createIndexes", "fresh", indexes=[{"key": {"a": 1}, "name": "a_1"}])
    assert created["createdCollectionAutomatically"] is True
    assert created["numIndexesAfter"] == 2
    db.command("dropIndexes", "tokens", index={"family": 1, "user": -1})
    tokens.drop_index("expires_1")
    assert list(tokens.index_information()) == ["_id_"]
    with pytest.raises(OperationFailure) as missing:
        tokens.drop_index("nope_1")
    assert missing.value.code == 27
    db.fresh.drop_indexes()
    assert list(db.fresh.index_information()) == ["_id_"]
    assert list(db.absent.list_indexes()) == []  # pymongo turns NamespaceNotFound into nothing
    with pytest.raises(OperationFailure) as absent:
        db.command("dropIndexes", "absent", index="*")
    assert absent.value.code == 26


def test_ttl_index_hides_expired_documents(db: Database[Doc]) -> None:
    # GIVEN a TTL index on `expires` and one token past its expiry, one not
    db.tokens.create_index("expires", expireAfterSeconds=0)
    now = datetime.now(UTC)
    db.tokens.insert_many(
        [
            {"_id": "old", "expires": now - timedelta(hours=1)},
            {"_id": "new", "expires": now + timedelta(hours=1)},
        ]
    )
    # THEN only the live one is found (mongomock expires documents when the collection is read)
    assert [doc["_id"] for doc in db.tokens.find()] == ["new"]


def test_unique_index_over_duplicates_is_refused(db: Database[Doc]) -> None:
    db.dups.insert_many([{"a": 1}, {"a": 1}])
    with pytest.raises(DuplicateKeyError):
        db.dups.create_index("a", unique=True)


# --- errors -------------------------------------------------------------------------------------

FAILURES: dict[str, tuple[dict[str, Any], int, str]] = {
    "unknown command": ({"noSuchCommand": 1}, 59, "CommandNotFound"),
    "collection name not a string": ({"find": 5}, 73, "InvalidNamespace"),
    "mongomock lacks it": ({"find": "x", "filter": {"$where": "1"}}, 238, "NotImplemented"),
    "bad value": ({"count": "x", "skip": "many"}, 2, "BadValue"),
    "database aggregate": ({"aggregate": 1, "pipeline": [], "cursor": {}}, 238, "NotImplemented"),
    "crash inside mongomock": (
        {"aggregate": "x", "pipeline": [{"$project": {"q": {"$divide": ["$n", 0]}}}], "cursor": {}},
        1,
        "InternalError",
    ),
    # a mongod with no such user answers only "Authentication failed." (sasl_commands.cpp)
    "sign-in with a user it has not": (
        {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b"n,,n=lucid,r=abc"},
        18,
        "AuthenticationFailed",
    ),
    "a mechanism it does not offer": ({"saslStart": 1, "mechanism": "PLAIN"}, 2, "BadValue"),
}


def test_a_server_that_requires_auth_answers_only_the_handshake_before_sign_in() -> None:
    # GIVEN the server started as a mongod with authorization on, and a client naming no user
    with start_mongo_server(requires_auth=True) as server:
        client: MongoClient[Doc] = MongoClient(server.uri, timeoutMS=5000)
        # THEN what a mongod answers before sign-in works (pymongo's handshake, ping, buildInfo)
        assert client.lucid.command("ping")["ok"] == 1.0
        assert client.lucid.command("buildInfo")["ok"] == 1.0
        # AND every other command is 13 Unauthorized naming it, as commands.cpp words it
        for operation, name in ((lambda: client.lucid.x.find_one(), "find"),
                                (lambda: client.lucid.x.insert_one({}), "insert")):  # fmt: skip
            with pytest.raises(OperationFailure) as refused:
                operation()
            details = refused.value.details or {}
            assert (refused.value.code, details.get("codeName")) == (13, "Unauthorized")
            assert details.get("errmsg") == f"Command {name} requires authentication"
        client.close()


def test_a_user_of_the_server_signs_in_with_scram_sha_256_and_only_then_is_served() -> None:
    # GIVEN a server with authorization on and one user
    with start_mongo_server(requires_auth=True, users={"lucid": "Pw-s3cret-9"}) as server:
        uri = server.uri.replace("mongodb://", "mongodb://lucid:Pw-s3cret-9@")
        # WHEN pymongo signs in as that user (mechanism negotiated: hello names SCRAM-SHA-256)
        client: MongoClient[Doc] = MongoClient(uri, timeoutMS=5000)
        # THEN its commands are served
        client.lucid.x.insert_one({"_id": 1})
        assert client.lucid.x.find_one() == {"_id": 1}
        client.close()
        # AND a wrong password, SCRAM-SHA-1, or a conversation step out of turn are refused as
        # a mongod refuses them: 18 "Authentication failed."
        for refused in (
            uri.replace("9@", "8@"),
            uri.replace("/?", "/?authMechanism=SCRAM-SHA-1&"),
        ):
            other: MongoClient[Doc] = MongoClient(refused, timeoutMS=5000)
            with pytest.raises(OperationFailure) as failure:
                other.lucid.x.find_one()
            assert failure.value.code == 18
            other.close()
        anonymous: MongoClient[Doc] = MongoClient(server.uri, timeoutMS=5000)
        with pytest.raises(OperationFailure) as failure:
            anonymous.admin.command({"saslContinue": 1, "conversationId": 1, "payload": b"x"})
        assert failure.value.code == 18
        with pytest.raises(OperationFailure) as failure:
            anonymous.lucid.x.find_one()
        assert failure.value.code == 13
        anonymous.close()


@pytest.mark.parametrize(("command", "code", "code_name"), FAILURES.values(), ids=FAILURES.keys())
def test_failures_are_mongodb_error_documents(
    db: Database[Doc], command: dict[str, Any], code: int, code_name: str
) -> None:
    db.x.insert_one({"n": 1})
    with pytest.raises(OperationFailure) as failure:
        db.command(command)
    assert failure.value.code == code
    assert (failure.value.details or {}).get("codeName") == code_name
    assert db.x.count_documents({}) == 1  # the connection and the server carry on


def test_operation_failures_of_mongomock_keep_their_message(db: Database[Doc]) -> None:
    with pytest.raises(OperationFailure, match=r"unknown operator: \$foo") as failure:
        db.x.find_one({"a": {"$foo": 1}})
    assert failure.value.code == 2
    with pytest.raises(OperationFailure, match="not supported by the embedded MongoDB"):
        db.x.update_one({}, {"$set": {"a.$[e]": 0}}, array_filters=[{"e": 1}], upsert=True)


# --- sharing and lifecycle ----------------------------------------------------------------------

CHILD = """
import sys
import pymongo
with pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000) as client:
    shared = client[sys.argv[2]].shared
    print(shared.find_one({"_id": "parent"})["v"])
    shared.insert_one({"_id": "child", "v": 2})
"""


def test_clients_and_processes_share_one_store(server: EmbeddedMongo, db: Database[Doc]) -> None:
    db.shared.insert_one({"_id": "parent", "v": 1})
    with connect(server.uri) as second:
        assert second[db.name].shared.find_one({"_id": "parent"}) == {"_id": "parent", "v": 1}
    child = subprocess.run(
        [sys.executable, "-W", "error", "-c", CHILD, server.uri, db.name],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert child.stdout.strip() == "1"
    assert db.shared.find_one({"_id": "child"}) == {"_id": "child", "v": 2}


def test_start_warns_and_stop_is_clean_and_fast(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="lucid_edge.local.mongo_server"):
        embedded = start_mongo_server(port)
    assert "NOTHING IS PERSISTED" in caplog.text
    assert embedded.uri == f"mongodb://127.0.0.1:{port}/?directConnection=true"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
        idle.sendall(op_msg({"ping": 1, "$db": "admin"}))
        assert read_reply(idle)[0] == 2013  # a served connection, now idle
        started = time.monotonic()
        embedded.stop()
        assert time.monotonic() - started < 1.0
        assert closed_by_peer(idle)  # open connections are closed, not left hanging
    embedded.stop()  # a second stop is harmless
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with start_mongo_server(port) as again:  # the port was released
        assert again.port == port


def test_a_forked_worker_does_not_keep_the_port_open() -> None:
    # GIVEN a worker forked from the process that runs the server, up and still alive
    embedded = start_mongo_server()
    ready_read, ready_write = os.pipe()
    release_read, release_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(ready_write, b"r")
        os.read(release_read, 1)
        os._exit(0)
    try:
        assert os.read(ready_read, 1) == b"r"
        # WHEN the server stops
        embedded.stop()
        # THEN nobody listens on its port any more
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", embedded.port), timeout=1).close()
    finally:
        os.write(release_write, b"x")
        os.waitpid(pid, 0)
        for fd in (ready_read, ready_write, release_read, release_write):
            os.close(fd)


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(EmbeddedMongoError, match="cannot listen"):
            start_mongo_server(busy.getsockname()[1])


# --- cursor bookkeeping -------------------------------------------------------------------------


def test_idle_cursors_are_dropped_after_ten_minutes() -> None:
    cursors = Cursors()
    cursor_id, first = cursors.open("db.c", [{"i": i} for i in range(5)], 2, single_batch=False)
    assert len(first) == 2
    assert cursors.get(cursor_id) is not None
    cursors.open_cursors[cursor_id].last_used -= IDLE_CURSOR_SECONDS + 1
    cursors.open("db.c", [{"i": i} for i in range(5)], 2, single_batch=False)
    assert cursors.get(cursor_id) is None


def test_a_batch_never_exceeds_the_byte_cap() -> None:
    large = "x" * (MAX_BATCH_BYTES // 3 + 1)
    cursors = Cursors()
    cursor_id, first = cursors.open("db.c", [{"s": large}] * 4, None, single_batch=False)
    assert len(first) == 2
    cursor = cursors.get(cursor_id)
    assert cursor is not None
    assert len(cursor.take(None)) == 2
    assert cursor.exhausted


def test_updates_with_overlapping_paths_are_refused_like_mongodb(db: Database[Doc]) -> None:
    # GIVEN a stored document (so `$setOnInsert` would not even apply)
    db.things.insert_one({"_id": 1, "v": 1, "p": {"q": 1}})
    conflicts: list[Doc] = [
        {"$set": {"v": 2}, "$setOnInsert": {"v": 3}},
        {"$set": {"v": 2}, "$inc": {"v": 1}},
        {"$set": {"p": {}, "p.q": 2}},
        {"$unset": {"p.q": ""}, "$set": {"p": 1}},
        {"$rename": {"v": "w"}, "$set": {"w": 1}},
    ]
    for update in conflicts:
        # WHEN an update, a findAndModify or an upsert names one path twice (or a path and its
        # parent) THEN each is refused with MongoDB's code 40 and nothing changes
        with pytest.raises(OperationFailure) as refused:
            db.things.update_one({"_id": 1}, update)
        assert refused.value.code == 40, update
        assert "would create a conflict at" in str(refused.value)
        with pytest.raises(OperationFailure) as refused:
            db.things.find_one_and_update({"_id": 1}, update)
        assert refused.value.code == 40, update
        with pytest.raises(OperationFailure) as refused:
            db.things.update_one({"_id": 2}, update, upsert=True)
        assert refused.value.code == 40, update
    assert list(db.things.find()) == [{"_id": 1, "v": 1, "p": {"q": 1}}]
    # An unknown operator is refused even when nothing matches (mongomock: only on a match)
    with pytest.raises(OperationFailure) as unknown:
        db.things.update_one({"_id": 3}, {"$sett": {"v": 1}})
    assert unknown.value.code == 9
    # Sibling paths are no conflict
    db.things.update_one({"_id": 1}, {"$set": {"p.q": 2, "p.r": 3}, "$inc": {"v": 1}})
    assert db.things.find_one({"_id": 1}) == {"_id": 1, "v": 2, "p": {"q": 2, "r": 3}}


def test_index_conflicts_are_refused_like_mongodb(db: Database[Doc]) -> None:
    # GIVEN the users' unique index, created under its default name by hand
    db.users.create_index("address", unique=True)
    # WHEN the same key pattern is created again under another name THEN 85 (a real server
    # refuses it: the gateway's cold start would fail on such a database, never on ours)
    with pytest.raises(OperationFailure) as renamed:
        db.users.create_index("address", name="address_unique", unique=True)
    assert (renamed.value.code, (renamed.value.details or {}).get("codeName")) == (
        85,
        "IndexOptionsConflict",
    )
    assert "address_1" in str(renamed.value)
    # WHEN a name is reused for another key pattern THEN 86
    with pytest.raises(OperationFailure) as rekeyed:
        db.users.create_index("role", name="address_1")
    assert (rekeyed.value.code, (rekeyed.value.details or {}).get("codeName")) == (
        86,
        "IndexKeySpecsConflict",
    )
    # The same key with another partial filter may exist twice; the same spec again is a no-op
    db.users.create_index("address", name="active", partialFilterExpression={"on": True})
    assert db.users.create_index("address", unique=True) == "address_1"
    assert sorted(db.users.index_information()) == ["_id_", "active", "address_1"]


# Each: the index there, the one asked for, and mongod's answer (code, or the indexes after):
# mongodb/mongo index_catalog_impl.cpp _doesSpecConflictWithExisting and index_descriptor.cpp
# compareIndexOptions (MongoDB 5.0+: unique, sparse, partialFilterExpression and collation tell
# two indexes on one key apart; other options only make them "equivalent").
INDEX_CASES = {
    "same name, unique differs": ({"name": "i"}, {"name": "i", "unique": True}, 86),
    "same name, partial filter differs": (
        {"name": "i"},
        {"name": "i", "partialFilterExpression": {"a": {"$gt": 1}}},
        86,
    ),
    "same name, TTL differs": (
        {"name": "i", "expireAfterSeconds": 5},
        {"name": "i", "expireAfterSeconds": 6},
        85,
    ),
    "same name, hidden differs": ({"name": "i"}, {"name": "i", "hidden": True}, 85),
    "other name, TTL differs": (
        {"name": "i", "expireAfterSeconds": 5},
        {"name": "j", "expireAfterSeconds": 6},
        85,
    ),
    "other name, identical": ({"name": "i"}, {"name": "j"}, 85),
    "other name, unique differs": ({"name": "i"}, {"name": "j", "unique": True}, ["i", "j"]),
    "other name, sparse differs": ({"name": "i"}, {"name": "j", "sparse": True}, ["i", "j"]),
    "identical": ({"name": "i", "unique": True}, {"name": "i", "unique": True}, ["i"]),
}


@pytest.mark.parametrize(("there", "asked", "answer"), INDEX_CASES.values(), ids=list(INDEX_CASES))
def test_a_second_index_on_a_key_is_refused_or_made_as_mongod_does(
    db: Database[Doc], there: dict[str, Any], asked: dict[str, Any], answer: int | list[str]
) -> None:
    # GIVEN an index on `a`
    db.t.create_index("a", **there)
    # WHEN another index on `a` is asked for
    try:
        db.t.create_index("a", **asked)
        code = None
    except OperationFailure as refused:
        code = refused.code
    # THEN it is refused with mongod's code (it took those with a differing TTL or hidden, and
    # refused those that differ in unique or sparse under another name, all with 85), or made
    # as mongod makes it
    if isinstance(answer, int):
        assert code == answer
        assert sorted(db.t.index_information()) == ["_id_", "i"]
    else:
        assert code is None
        assert sorted(db.t.index_information()) == ["_id_", *answer]


def test_collation_is_refused_not_ignored(db: Database[Doc]) -> None:
    # GIVEN "a" and "A", which a case-insensitive collation (strength 2) finds as one
    db.t.insert_many([{"_id": 1, "n": "a"}, {"_id": 2, "n": "A"}])
    insensitive = {"locale": "en", "strength": 2}
    # WHEN a find, a count, an update, a delete or an index asks for it
    asks = [
        lambda: db.t.find_one({"n": "a"}, collation=insensitive),
        lambda: db.t.count_documents({"n": "a"}, collation=insensitive),
        lambda: db.t.update_many({"n": "a"}, {"$set": {"m": 1}}, collation=insensitive),
        lambda: db.t.delete_many({"n": "a"}, collation=insensitive),
        lambda: db.t.create_index("n", unique=True, collation=insensitive),
    ]
    for ask in asks:
        # THEN each is refused, 238 NotImplemented (mongomock compared the strings as bytes:
        # one found where a server finds two, a unique index taking both)
        with pytest.raises(OperationFailure) as refused:
            ask()
        assert (refused.value.code, (refused.value.details or {}).get("codeName")) == (
            238,
            "NotImplemented",
        )
    # AND nothing was changed
    assert list(db.t.find({}, {"_id": 1, "n": 1, "m": 1})) == [
        {"_id": 1, "n": "a"},
        {"_id": 2, "n": "A"},
    ]
    assert sorted(db.t.index_information()) == ["_id_"]


def test_a_test_database_refuses_what_a_real_server_refuses() -> None:
    # GIVEN the fresh database a layer or function test gets
    first, second = in_memory_database(), in_memory_database()
    assert first.name != second.name
    # WHEN an update names one path twice THEN it is refused as a real server refuses it
    # (6d2cc82: an in-process mongomock database, which applied it)
    with pytest.raises(OperationFailure) as conflict:
        first.t.update_one({"_id": 1}, {"$set": {"a": 1}, "$inc": {"a": 1}}, upsert=True)
    assert conflict.value.code == 40
    assert first.t.count_documents({}) == 0
    # AND each database starts empty
    first.t.insert_one({"_id": 1})
    assert second.t.count_documents({}) == 0
