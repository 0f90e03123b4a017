"""By-id reads on a connection of pymongo's pool (`lucid.store.fast_reads`), against the in-memory
MongoDB over the wire: the same documents as pymongo's find_one, pymongo's connections and
sign-in, faults answered by pymongo, the switch, and the private pymongo API it relies on."""

from __future__ import annotations

import gc
import inspect
import json
import logging
import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import bson
import pymongo
import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo import MongoClient, monitoring
from pymongo.collection import Collection
from pymongo.errors import PyMongoError
from pymongo.synchronous import client_session, mongo_client, pool, topology

from lucid.config import Settings
from lucid.store import fast_reads
from lucid.store.documents import DatabaseRefusedError, new_id, utcnow
from lucid.store.mongo import build_database
from lucid.users.repository import UserRepository
from lucid_edge.local import free_port, start_mongo_server

Doc = dict[str, Any]
KEY = "k" * 32


class _Pool(monitoring.ConnectionPoolListener):
    """pymongo's CMAP events, counted: what the pool lent, got back, opened and closed."""

    def __init__(self) -> None:
        self.out = self.back = self.created = self.closed = self.cleared = self.most_out = 0
        self.reasons: list[str] = []  # each ConnectionClosedEvent's reason

    def connection_checked_out(self, event: Any) -> None:
        self.out += 1
        self.most_out = max(self.most_out, self.out - self.back)

    def connection_checked_in(self, event: Any) -> None:
        self.back += 1

    def connection_created(self, event: Any) -> None:
        self.created += 1

    def connection_closed(self, event: Any) -> None:
        self.closed += 1
        self.reasons.append(event.reason)

    def pool_cleared(self, event: Any) -> None:
        self.cleared += 1

    def pool_created(self, event: Any) -> None: ...
    def pool_ready(self, event: Any) -> None: ...
    def pool_closed(self, event: Any) -> None: ...
    def connection_ready(self, event: Any) -> None: ...
    def connection_check_out_started(self, event: Any) -> None: ...
    def connection_check_out_failed(self, event: Any) -> None: ...


@contextmanager
def commands_pymongo_ran(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The names of the commands pymongo's own operation path started in the block, from its
    command log (the `pymongo.command` logger at DEBUG: "Command started" lines)."""
    names: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="pymongo.command"):
        caplog.clear()
        yield names
        for record in caplog.records:
            if record.name == "pymongo.command":
                line = json.loads(record.getMessage())
                if line.get("message") == "Command started":
                    names.append(line["commandName"])


def _client(uri: str, **options: Any) -> MongoClient[Doc]:
    # The options build_database gives the process's client (lucid.store.mongo).
    return MongoClient(uri, tz_aware=True, timeoutMS=2000, **options)


@contextmanager
def _restarted_after_a_read(
    document: Doc, connections: _Pool, settle: float = 0.0, **options: Any
) -> Iterator[Collection[Doc]]:
    """The users collection of a client (`options`, CMAP events counted in `connections`) that
    wrote `document` and read it by id through the fast path, this thread then holding the
    connection it read on (`settle` seconds after); then its server stopped and another started
    on the same port, empty, the document written again. The client is closed after."""
    port = free_port()
    with start_mongo_server(port) as first:
        client = _client(first.uri, event_listeners=[connections], **options)
        users = client.lucid.users
        users.insert_one(document)
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        time.sleep(settle)
    try:
        with start_mongo_server(port) as second:
            writer = _client(second.uri)
            writer.lucid.users.insert_one(document)
            writer.close()
            yield users
    finally:
        client.close()


def answer_of_a_forked_child(action: Callable[[], bool], lock: Any = None) -> bytes:
    """What `action()` said in a child forked from this process: b"1" (true), b"0" (false), b""
    (no answer within 30 s: the child was killed). `lock`, when given, is held by this process
    across the fork and released in the parent right after it (another thread's at that
    instant)."""
    readable, writable = os.pipe()
    if lock is not None:
        lock.acquire()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                right = action()
            os.write(writable, b"1" if right else b"0")
        finally:
            os._exit(0)
    if lock is not None:
        lock.release()
    os.close(writable)
    try:
        answered = select.select([readable], [], [], 30)[0]
        if not answered:
            os.kill(child, signal.SIGKILL)  # it waits (on the lock): the test fails
        return os.read(readable, 1) if answered else b""
    finally:
        os.close(readable)
        os.waitpid(child, 0)


def until_the_pool_is_cleared(connections: _Pool) -> None:
    """Wait (up to 15 s) for pymongo's monitor to clear the pool (SDAM), and check it did."""
    deadline = time.monotonic() + 15
    while connections.cleared == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections.cleared >= 1


def _every_kind_of_value() -> Doc:
    return {
        "_id": new_id(),
        "address": "T" + "x" * 33,
        "created_at": utcnow(),
        "naive_stored": datetime(2026, 1, 2, 3, 4, 5, 678000),
        "aware_elsewhere": datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "count": 3,
        "big": Int64(2**62),
        "ratio": 0.25,
        "money": Decimal128("10.01"),
        "flag": False,
        "nothing": None,
        "blob": Binary(b"\x00\x01"),
        "oid": ObjectId(),
        "preferences": {"theme": "dark", "nested": {"list": [1, "two", {"three": 3.0}]}},
        "tags": [],
        "unicode": "héllo ✓",
    }


def test_a_read_is_the_document_pymongo_returns_field_by_field_without_pymongos_find(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with start_mongo_server() as server:
        client = _client(server.uri)
        users = client.lucid.users
        stored = _every_kind_of_value()
        users.insert_one(stored)
        # WHEN the document is read by id through the fast path, whole and projected, and an
        # unknown id is read
        with commands_pymongo_ran(caplog) as ran:
            fast = fast_reads.find_one(users, {"_id": stored["_id"]})
            projected = fast_reads.find_one(users, {"_id": stored["_id"]}, {"_id": 1, "count": 1})
            missing = fast_reads.find_one(users, {"_id": new_id()})
        # THEN pymongo's operation path ran no command: the fast path answered all three
        assert ran == []
        # AND each is what pymongo's find_one returns, down to the types and time zones
        expected = users.find_one({"_id": stored["_id"]})
        assert fast is not None
        assert expected is not None
        assert list(fast) == list(expected)
        for name, value in expected.items():
            assert type(fast[name]) is type(value), name
            assert fast[name] == value, name
        for name in ("created_at", "naive_stored", "aware_elsewhere"):
            assert fast[name].tzinfo is not None  # tz_aware, as the collection's codec says
            assert fast[name].utcoffset() == expected[name].utcoffset()
        assert projected == users.find_one({"_id": stored["_id"]}, {"_id": 1, "count": 1})
        assert missing is None
        client.close()


def test_the_switch_off_reads_through_pymongo(caplog: pytest.LogCaptureFixture) -> None:
    with start_mongo_server() as server:
        ran_by_setting = {}
        for fast in (True, False):
            # GIVEN the process's database built with MONGODB_FAST_READS on, then off
            settings = Settings(JWT_SECRET_KEY=KEY, MONGODB_URI=server.uri, MONGODB_FAST_READS=fast)
            database = build_database(settings)
            user = UserRepository(database).upsert_on_login("T" + "a" * 33, is_admin=False)
            # WHEN a user is read by id
            with commands_pymongo_ran(caplog) as ran:
                assert UserRepository(database).find_by_id(user["_id"]) == user
            ran_by_setting[fast] = ran
            database.client.close()
    # THEN only with it off does pymongo's own find run
    assert ran_by_setting == {True: [], False: ["find"]}


def test_a_server_restarted_between_two_reads_still_answers_the_second_and_leaks_nothing() -> None:
    document = {"_id": new_id(), "address": "T" + "b" * 33, "created_at": utcnow()}
    connections = _Pool()
    # GIVEN the server restarted on the same port (the held connection is dead)
    with _restarted_after_a_read(document, connections) as users:
        # WHEN the same read comes again THEN it is still right (pymongo, after the fast
        # path's attempt failed on the dead connection, reconnected and read)
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        # AND every connection lent was given back but the one this thread holds for its next
        # read, the dead one closed
        assert connections.out == connections.back + 1
        assert connections.closed >= 1
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_reads_from_threads_that_end_and_a_client_that_closes_leave_no_connection_out() -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        users = client.lucid.users
        ids = [new_id() for _ in range(8)]
        users.insert_many([{"_id": user_id, "n": index} for index, user_id in enumerate(ids)])
        found: list[Doc | None] = []

        def read(user_id: str) -> None:
            found.extend(fast_reads.find_one(users, {"_id": user_id}) for _ in range(25))

        threads = [threading.Thread(target=read, args=(user_id,)) for user_id in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # THEN every read was right, and once the threads ended no connection is lent out:
        # each thread held one for its 25 reads, handed back when it ended (and insert_many's)
        assert sorted(doc["_id"] for doc in found if doc) == sorted(ids * 25)
        assert connections.out == connections.back == 8 + 1
        # AND closing the client closes every connection it opened
        client.close()
    assert connections.closed == connections.created > 0


def test_reads_on_a_server_that_requires_sign_in_use_pymongos_signed_in_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a server with authorization on and one SCRAM-SHA-256 user
    with start_mongo_server(requires_auth=True, users={"lucid": "Pw-s3cret-9"}) as server:
        uri = server.uri.replace("mongodb://", "mongodb://lucid:Pw-s3cret-9@")
        database = build_database(Settings(JWT_SECRET_KEY=KEY, MONGODB_URI=uri))
        users = UserRepository(database)
        user = users.upsert_on_login("T" + "c" * 33, is_admin=False)
        # WHEN the user is read by id
        with commands_pymongo_ran(caplog) as ran:
            found = users.find_by_id(user["_id"])
        # THEN the fast path read it on a connection pymongo signed in (the server refuses any
        # other: 13), without pymongo's find
        assert found == user
        assert ran == []
        database.client.close()
        # AND with a password the server refuses, the read is the refusal's 503, as pymongo's
        wrong = build_database(Settings(JWT_SECRET_KEY=KEY, MONGODB_URI=uri.replace("9@", "8@")))
        with pytest.raises(DatabaseRefusedError, match="the users store refused the credentials"):
            UserRepository(wrong).find_by_id(user["_id"])
        wrong.client.close()


def test_the_pymongo_internals_it_relies_on_are_those_it_was_written_for() -> None:
    """Fails when pymongo moves: `lucid.store.fast_reads` uses PRIVATE pymongo API, read for
    pymongo 4.10.1. With another version installed the fast path turns itself off (every read is
    pymongo's), and this test says so; read the internals its docstring lists again, then move
    PINNED_PYMONGO."""
    assert pymongo.version == fast_reads.PINNED_PYMONGO, (
        f"pymongo {pymongo.version} is installed; lucid.store.fast_reads was written against "
        f"{fast_reads.PINNED_PYMONGO}'s private API and is OFF until it is checked again"
    )

    def parameters(function: Any) -> list[str]:
        return list(inspect.signature(function).parameters)

    client_class = mongo_client.MongoClient
    assert parameters(client_class._select_server)[:4] == [
        "self", "server_selector", "session", "operation"
    ]  # fmt: skip
    assert parameters(mongo_client._MongoClientErrorHandler) == ["client", "server", "session"]
    assert parameters(mongo_client._MongoClientErrorHandler.contribute_socket)[:2] == [
        "self", "conn"
    ]  # fmt: skip
    assert parameters(client_class._send_cluster_time) == ["self", "command", "session"]
    assert parameters(topology.Topology.get_server_session) == ["self", "session_timeout_minutes"]
    assert parameters(topology.Topology.return_server_session) == ["self", "server_session"]
    assert parameters(topology.Topology.receive_cluster_time) == ["self", "cluster_time"]
    assert parameters(pool.Connection.set_conn_timeout) == ["self", "timeout"]
    assert parameters(pool.Connection._raise_connection_failure) == ["self", "error"]
    assert parameters(pool.Connection.close_conn) == ["self", "reason"]
    assert parameters(pool.Pool.checkout) == ["self", "handler"]
    # a lease is pymongo's checkout generator held open: closed (as the garbage collector closes
    # it) it checks the connection in, which takes the pool's lock (fast_reads._PoolLeases)
    checkout = inspect.getsource(pool.Pool.checkout)
    assert "yield conn\n        except BaseException:" in checkout
    assert "with self.lock:" in inspect.getsource(pool.Pool.checkin)
    assert parameters(topology.Topology.get_server_by_address) == ["self", "address"]
    # what a lease relies on: the checks of _perished it makes per read, the check-in's idle
    # clock it mirrors, a clear and a close bumping the generation, a fork's new topology
    assert parameters(pool.Pool.stale_generation) == ["self", "gen", "service_id"]
    perished = inspect.getsource(pool.Pool._perished)
    for check in ("max_idle_time_seconds", "_check_interval_seconds", "conn_closed()"):
        assert check in perished, check
    assert "update_last_checkin_time()" in inspect.getsource(pool.Pool.checkin)
    assert "self.last_checkin_time = time.monotonic()" in inspect.getsource(
        pool.Connection.update_last_checkin_time
    )
    assert "self.gen.inc(service_id)" in inspect.getsource(pool.Pool._reset)
    assert "_init_background" in inspect.getsource(client_class._after_fork)
    assert "_release_locks()" in inspect.getsource(mongo_client._after_fork_child)
    assert "_forkable_locks.add(lock)" in inspect.getsource(pymongo.lock._create_lock)
    assert pool.PoolState.CLOSED == 3
    assert parameters(client_session._ServerSession.timed_out) == [
        "self", "session_timeout_minutes"
    ]  # fmt: skip
    # Connection.apply_timeout, whose maxTimeMS and socket timeout rule fast_reads copies
    assert "max_time_ms = timeout - rtt" in inspect.getsource(pool.Connection.apply_timeout)
    # and the pooled connection's attributes it reads, on a real one
    with start_mongo_server() as server:
        client = _client(server.uri)
        client.admin.command("ping")
        selected = client._select_server(pymongo.ReadPreference.PRIMARY, None, "find")
        with selected.checkout() as conn:
            for name in (
                "conn", "compression_context", "op_msg_enabled", "supports_sessions",
                "logical_session_timeout_minutes", "max_wire_version", "max_message_size",
                "last_checkin_time", "generation", "service_id",
            ):  # fmt: skip
                assert hasattr(conn, name), name
        for name in ("max_pool_size", "state", "_check_interval_seconds", "opts"):
            assert hasattr(selected.pool, name), name
        assert selected.description.min_round_trip_time >= 0
        assert client._topology.description is client._topology._description
        assert client._encrypter is None
        assert client.options.pool_options.server_api is None
        assert client.options.pool_options._compression_settings is not None
        client.close()
    bson.decode(bson.encode({"ok": 1}))  # the codec the reply is decoded with


def test_reads_it_does_not_serve_are_pymongos(caplog: pytest.LogCaptureFixture) -> None:
    with start_mongo_server() as server:
        document = {"_id": new_id(), "n": 1}
        clients = [
            _client(server.uri, compressors="zlib"),  # compression: every request compressed
            MongoClient(server.uri, tz_aware=True),  # no timeoutMS: no CSOT deadline to share
        ]
        clients[0].lucid.users.insert_one(document)
        collections = [client.lucid.users for client in clients]
        # a collection that reads elsewhere than the primary
        collections.append(
            _client(server.uri).lucid.users.with_options(
                read_preference=pymongo.ReadPreference.SECONDARY_PREFERRED
            )
        )
        for collection in collections:
            # WHEN a document is read by id THEN pymongo's find reads it
            with commands_pymongo_ran(caplog) as ran:
                assert fast_reads.find_one(collection, {"_id": document["_id"]}) == document
            assert ran == ["find"]
            collection.database.client.close()


def test_a_reply_it_does_not_understand_is_read_again_by_pymongo_on_another_connection(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        users = client.lucid.users
        document = {"_id": new_id(), "n": 2}
        users.insert_one(document)
        backend = server._server.backend
        answer = backend.run

        def open_cursor(command: Doc, database: str, connection_id: int) -> Doc:
            reply = answer(command, database, connection_id)
            if next(iter(command)) == "find":  # a cursor left open despite singleBatch
                reply["cursor"]["id"] = Int64(42)
            return reply

        monkeypatch.setattr(backend, "run", open_cursor)
        # WHEN a document is read by id and the server answers with an open cursor
        with commands_pymongo_ran(caplog) as ran:
            found = fast_reads.find_one(users, {"_id": document["_id"]})
        # THEN pymongo read it again (and, being pymongo, killed the cursor it was told of)
        assert found == document
        assert ran[0] == "find"
        # AND the fast path's connection was closed, none left lent out
        assert connections.closed >= 1
        assert connections.out == connections.back
        client.close()


def test_a_fast_read_that_timed_out_leaves_pymongo_only_what_remains_of_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_mongo_server() as server:
        client: MongoClient[Doc] = MongoClient(server.uri, tz_aware=True, timeoutMS=1000)
        users = client.lucid.users
        document = {"_id": new_id(), "n": 1}
        users.insert_one(document)
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document  # held now
        backend = server._server.backend
        answer = backend.run
        finds: list[int] = []

        def first_find_answered_late(command: Doc, database: str, connection_id: int) -> Doc:
            if next(iter(command)) == "find":
                finds.append(connection_id)
                if len(finds) == 1:
                    time.sleep(2)  # twice MONGODB_TIMEOUT_MS: the fast attempt times out
            reply: Doc = answer(command, database, connection_id)
            return reply

        monkeypatch.setattr(backend, "run", first_find_answered_late)
        # WHEN the fast attempt waits out the client's timeoutMS
        # THEN the read fails (a 503 for the routes): pymongo's own find, which the server would
        # answer at once, had only what remained of the same deadline, none (with a deadline of
        # its own it would have answered the document, the request having taken twice the bound)
        with pytest.raises(PyMongoError):
            fast_reads.find_one(users, {"_id": document["_id"]})
        client.close()


# The connection a thread holds between its reads (fast_reads._Lease): checked before each read
# as pymongo's pool checks a connection it lends, handed back when the thread ends, when the
# client closes and after any error, and never more than half of maxPoolSize held.


def _recording_finds(server: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Any]]:
    """(connection id, lsid's id) of each `find` the in-memory server answers from now on."""
    backend = server._server.backend
    answer = backend.run
    finds: list[tuple[int, Any]] = []

    def run(command: Doc, database: str, connection_id: int) -> Doc:
        if next(iter(command)) == "find":
            finds.append((connection_id, command["lsid"]["id"]))
        reply: Doc = answer(command, database, connection_id)
        return reply

    monkeypatch.setattr(backend, "run", run)
    return finds


def test_reads_of_a_thread_go_on_one_connection_with_one_lsid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        finds = _recording_finds(server, monkeypatch)
        client = _client(server.uri, event_listeners=[connections])
        users = client.lucid.users
        document = {"_id": new_id(), "n": 3}
        users.insert_one(document)
        # WHEN one thread reads three times
        assert [fast_reads.find_one(users, {"_id": document["_id"]}) for _ in "abc"] == [
            document
        ] * 3
        # THEN the three finds came on one connection with one session id, checked out once
        assert len(set(finds)) == 1
        assert finds[0][1] is not None
        assert connections.out == 2  # insert_one's, then the held one
        assert connections.back == 1
        client.close()
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_a_pool_cleared_between_two_reads_closes_the_held_connection_as_stale(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = {"_id": new_id(), "n": 4}
    connections = _Pool()
    with _restarted_after_a_read(document, connections, heartbeatFrequencyMS=500) as users:
        # GIVEN pymongo's monitor saw the restart and cleared the pool (SDAM)
        until_the_pool_is_cleared(connections)
        # WHEN the thread reads again
        with commands_pymongo_ran(caplog) as ran:
            assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        # THEN its held connection was not used: it went back and the pool closed it as
        # stale, and the fast path read on a new one (pymongo ran no find)
        assert "stale" in connections.reasons
        assert ran == []
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_a_held_connection_the_server_closed_is_not_used_after_a_second_idle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = {"_id": new_id(), "n": 5}
    connections = _Pool()
    # (a monitor that polls once a minute, not streaming, so it does not clear the pool here;
    # 1.5 s after the read, the check the first selection may have asked of it, made 0.5 s
    # after its first, has been made on the first server, not on the second)
    polling = {"heartbeatFrequencyMS": 60000, "serverMonitoringMode": "poll"}
    with _restarted_after_a_read(document, connections, 1.5, **polling) as users:
        # GIVEN the held connection's server went away, and the connection sat over a second
        time.sleep(1.2)
        # WHEN the thread reads again
        with commands_pymongo_ran(caplog) as ran:
            assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        # THEN the closed socket was seen before use (as pymongo's pool looks at one idle over
        # a second) and the fast path read on a new connection: no failed attempt, no
        # pymongo find
        assert ran == []
        assert connections.cleared == 0
        assert connections.reasons == ["error"]
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_a_held_connection_idle_over_max_idle_time_is_closed_not_used() -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        writer = _client(server.uri)
        document = {"_id": new_id(), "n": 6}
        writer.lucid.users.insert_one(document)
        writer.close()
        client = _client(server.uri, event_listeners=[connections], maxIdleTimeMS=1000)
        users = client.lucid.users
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        assert connections.created == 1
        # WHEN the thread reads again after longer than maxIdleTimeMS
        time.sleep(1.3)
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        # THEN the held connection was closed and the read went on a new one
        assert connections.created == 2
        assert connections.closed == 1
        client.close()
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_a_held_session_about_to_expire_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    lsids = {}
    for minutes in (30, 1):
        with start_mongo_server() as server:
            backend = server._server.backend
            answer = backend.run

            def timeout_of(
                command: Doc, database: str, connection_id: int, answer: Any = answer
            ) -> Doc:
                reply: Doc = answer(command, database, connection_id)
                if "logicalSessionTimeoutMinutes" in reply:
                    reply["logicalSessionTimeoutMinutes"] = minutes  # noqa: B023
                return reply

            monkeypatch.setattr(backend, "run", timeout_of)
            finds = _recording_finds(server, monkeypatch)
            # GIVEN a server whose sessions expire after `minutes` (1: a session used even a
            # moment ago has under a minute to live, and the specification forbids it)
            client = _client(server.uri)
            users = client.lucid.users
            document = {"_id": new_id(), "n": 7}
            users.insert_one(document)
            # WHEN a thread reads twice
            for _ in range(2):
                assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
            lsids[minutes] = [lsid for _, lsid in finds]
            client.close()
    # THEN with 30 minutes both reads sent the held session, with 1 each read a fresh one
    assert lsids[30][0] == lsids[30][1]
    assert lsids[1][0] != lsids[1][1]


def test_at_most_half_of_max_pool_size_is_held_so_no_thread_waits_forever() -> None:
    document = {"_id": new_id(), "n": 8}
    with start_mongo_server() as server:
        # GIVEN maxPoolSize=1, two threads that each read and then write through pymongo
        connections = _Pool()
        client = _client(server.uri, event_listeners=[connections], maxPoolSize=1)
        users = client.lucid.users
        users.insert_one(document)
        failures: list[BaseException] = []
        found: list[Doc | None] = []

        def read_then_write() -> None:
            try:
                for _ in range(5):
                    found.append(fast_reads.find_one(users, {"_id": document["_id"]}))
                    users.update_one({"_id": document["_id"]}, {"$set": {"n": 8}})
            except BaseException as error:  # a wait for the connection that timed out
                failures.append(error)

        threads = [threading.Thread(target=read_then_write) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        # THEN nothing waited out the deadline (no connection was held: every read and write
        # checked the one connection out), every read was right, the pool was never oversold
        assert failures == []
        assert found == [document] * 10
        assert connections.most_out == 1
        assert connections.out == connections.back
        client.close()
        # AND with maxPoolSize=4 and three threads reading, two hold a connection, not three
        connections = _Pool()
        client = _client(server.uri, event_listeners=[connections], maxPoolSize=4)
        users = client.lucid.users
        all_read = threading.Barrier(4)

        def read_and_wait() -> None:
            fast_reads.find_one(users, {"_id": document["_id"]})
            all_read.wait(30)
            all_read.wait(30)

        threads = [threading.Thread(target=read_and_wait) for _ in range(3)]
        for thread in threads:
            thread.start()
        all_read.wait(30)
        held = connections.out - connections.back
        all_read.wait(30)
        for thread in threads:
            thread.join(30)
        assert held == 2
        assert connections.out == connections.back
        client.close()


def test_closing_the_client_closes_the_connections_threads_hold() -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        users = client.lucid.users
        document = {"_id": new_id(), "n": 9}
        users.insert_one(document)
        # GIVEN this thread and another, still running, each hold a connection after a read
        read = threading.Event()
        done = threading.Event()

        def read_and_wait() -> None:
            fast_reads.find_one(users, {"_id": document["_id"]})
            read.set()
            done.wait(30)

        thread = threading.Thread(target=read_and_wait)
        thread.start()
        assert read.wait(30)
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        assert connections.out - connections.back == 2
        # WHEN the client closes
        client.close()
        # THEN both were handed back and closed with the pool, the other thread still running
        assert connections.out == connections.back
        assert connections.closed == connections.created == 2
        assert set(connections.reasons) == {"poolClosed"}
        done.set()
        thread.join(30)
        assert connections.out == connections.back


def test_a_client_closed_during_a_read_closes_that_reads_connection_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        users = client.lucid.users
        document = {"_id": new_id(), "n": 10}
        users.insert_one(document)
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        backend = server._server.backend
        answer = backend.run

        def close_first(command: Doc, database: str, connection_id: int) -> Doc:
            if next(iter(command)) == "find":
                client.close()  # while the read waits for this answer
            return answer(command, database, connection_id)

        monkeypatch.setattr(backend, "run", close_first)
        # WHEN the client is closed while a read is on its held connection
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        # THEN the read still got its answer, and its connection was handed back and closed
        assert connections.out == connections.back
        assert connections.closed == connections.created


def test_a_forked_child_reads_on_its_own_connection_not_its_parents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_mongo_server() as server:
        finds = _recording_finds(server, monkeypatch)
        client = _client(server.uri)
        users = client.lucid.users
        document = {"_id": new_id(), "n": 11}
        users.insert_one(document)
        # GIVEN a process that holds a connection after a read
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        # WHEN it forks while another thread is handing a connection back (the fast path's
        # own lock held: another thread's hand-back at that instant) and the child reads
        # (pymongo gives a forked client a new topology: mongo_client.py `_after_fork`)
        reader = getattr(client, fast_reads._ATTRIBUTE)
        answer = answer_of_a_forked_child(
            lambda: fast_reads.find_one(users, {"_id": document["_id"]}) == document, reader._lock
        )
        # THEN the child read right (it did not wait on the lock its parent's thread held) on a
        # connection of its own, not on the parent's socket
        assert answer == b"1"
        assert len(finds) == 2
        assert finds[1][0] != finds[0][0]
        # AND the parent goes on reading on the one it holds
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        assert finds[2][0] == finds[0][0]
        client.close()


def test_a_lease_the_garbage_collector_drops_inside_the_pools_lock_waits_for_the_pool() -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        users = client.lucid.users
        document = {"_id": new_id(), "n": 12}
        users.insert_one(document)
        # GIVEN this thread holds a connection after a read, and the client is then dropped
        # without close(): only the garbage collector finds it (reader and client refer to
        # each other), on whichever thread it next runs
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        leased_from = next(iter(getattr(client, fast_reads._ATTRIBUTE)._idle)).pool
        assert connections.out - connections.back == 1
        gc.disable()  # so that the client is collected on that thread, not on this one
        try:
            # (pymongo warns of the client no one closed, and Python of its sockets: as meant)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                del users, client
                # WHEN the garbage collector drops the reader there
                # THEN that thread does not hand the connection back inside the lock it holds
                # (the check-in takes it again: that thread waited forever)
                assert _collected_on_a_thread_inside_the_lock_of(leased_from)
                assert connections.out - connections.back == 1
                # AND once the pool itself is garbage, the connection goes back with it
                del leased_from
                gc.collect()
        finally:
            gc.enable()
    assert connections.out == connections.back


def _collected_on_a_thread_inside_the_lock_of(pool: Any) -> bool:
    """Whether a garbage collection on another thread inside `pool`'s lock, as one triggered by
    an allocation in pymongo's own `with pool.lock:` (a non-reentrant lock) would be, finished
    within 10 s (the pool is in use on that thread, so alive)."""
    finished = threading.Event()

    def collect() -> None:
        with pool.lock:
            gc.collect()
        finished.set()

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    if not finished.wait(10):
        return False
    collector.join(10)
    return True


@pytest.mark.parametrize("then", ["lease", "close"])
def test_a_lease_of_a_replaced_reader_goes_back_at_the_next_lease_or_close(
    monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        users = client.lucid.users
        document = {"_id": new_id(), "n": 13}
        users.insert_one(document)
        backend = server._server.backend
        answer = backend.run

        def configure_first(command: Doc, database: str, connection_id: int) -> Doc:
            if next(iter(command)) == "find":
                fast_reads.configure(client, enabled=True)  # while the read waits for this
            return answer(command, database, connection_id)

        # GIVEN the client's reader is replaced (configure) while this thread reads on it: the
        # read ends with its lease idle in a reader only the garbage collector can find
        monkeypatch.setattr(backend, "run", configure_first)
        assert fast_reads.find_one(users, {"_id": document["_id"]}) == document
        monkeypatch.setattr(backend, "run", answer)
        leased_from = client._select_server(pymongo.ReadPreference.PRIMARY, None, "find").pool
        # WHEN the collector drops that reader on a thread inside the pool's lock
        gc.disable()
        try:
            assert _collected_on_a_thread_inside_the_lock_of(leased_from)
        finally:
            gc.enable()
        # THEN the connection is still out, until the next lease on that pool (another
        # thread's read), or the client's close(), hands it back
        assert connections.out - connections.back == 1
        if then == "lease":
            thread = threading.Thread(target=fast_reads.find_one, args=(users, document))
            thread.start()
            thread.join(30)
            assert connections.out == connections.back
        client.close()
        assert connections.out == connections.back
    assert connections.closed == connections.created
