"""The session's insert on the connection a thread holds (`lucid.store.fast_writes`), against the
in-memory MongoDB over the wire: what is stored and sent is pymongo's, its errors are pymongo's,
a write the server may have run is never sent afresh, and it is retried as pymongo retries it."""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any

import pymongo
import pytest
from bson.objectid import ObjectId
from pymongo import _csot, helpers_shared
from pymongo.collection import Collection
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    WriteConcernError,
    WTimeoutError,
)
from pymongo.synchronous import client_session, mongo_client, pool
from pymongo.write_concern import WriteConcern

from lucid.config import Settings
from lucid.sessions.repository import SessionRepository
from lucid.sessions.schemas import SessionCreate
from lucid.store import fast_reads, fast_writes
from lucid.store.documents import new_id, utcnow
from lucid.store.mongo import build_database
from lucid.users.repository import UserRepository
from lucid_edge.local import start_mongo_server
from lucid_edge.local.mongo_core import CommandError
from lucid_edge.local.mongo_server import ProtocolViolationError
from tests.shared.store.test_fast_reads import (
    KEY,
    _client,
    _every_kind_of_value,
    _Pool,
    _restarted_after_a_read,
    answer_of_a_forked_child,
    commands_pymongo_ran,
    until_the_pool_is_cleared,
)

Doc = dict[str, Any]


def _inserts(server: Any, monkeypatch: pytest.MonkeyPatch, fault: Any = None) -> list[Doc]:
    """Each `insert` command the in-memory server gets from now on, as it decoded it (the
    document sequence merged in), with the connection's id as `connection`; `fault(command,
    answer)` answers it when given (the server's own answer is `answer()`)."""
    backend = server._server.backend
    answer = backend.run
    seen: list[Doc] = []

    def run(command: Doc, database: str, connection_id: int) -> Doc:
        if next(iter(command)) != "insert":
            reply: Doc = answer(command, database, connection_id)
            return reply
        seen.append({**command, "connection": connection_id})
        if fault is None:
            return answer(command, database, connection_id)  # type: ignore[no-any-return]
        return fault(command, lambda: answer(command, database, connection_id))  # type: ignore[no-any-return]

    monkeypatch.setattr(backend, "run", run)
    return seen


def _as_replica_set_primary(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's handshake says: the primary of replica set `rs0` (pymongo then sends
    retryable writes their txnNumber, and retries them: server_description.py
    `retryable_writes_supported`)."""
    backend = server._server.backend
    hello = backend.hello

    def primary(request: Any) -> Doc:
        reply: Doc = hello(request)
        return reply | {"setName": "rs0", "hosts": [server.uri.split("/")[2]]}

    monkeypatch.setattr(backend, "hello", primary)


def _lost_reply(applied: bool) -> Any:
    """A fault: the first insert's connection closes with no reply, after the server applied
    the insert or before; the inserts after it are answered."""
    count = [0]

    def fault(command: Doc, answer: Any) -> Doc:
        count[0] += 1
        if count[0] > 1:
            return answer()  # type: ignore[no-any-return]
        if applied:
            answer()
        raise ProtocolViolationError("the reply is lost")

    return fault


def _session_document() -> Doc:
    # What SessionRepository.create inserts, with `_id` not first (pymongo stores it first).
    now = utcnow()
    return {
        "owner_id": new_id(),
        "_id": new_id(),
        "name": "ünïcode ✓",
        "node_id": None,
        "status": "pending",
        "metadata": {"region": "eu", "nested": {"list": [1, 2.5, "three", None]}},
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "ended_at": None,
        "version": 1,
    }


def _without_id(document: Doc) -> Doc:
    return {key: value for key, value in document.items() if key != "_id"}


def test_an_insert_stores_and_sends_what_pymongos_insert_one_does_without_running_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_mongo_server() as server:
        inserts = _inserts(server, monkeypatch)
        client = _client(server.uri)
        sessions = client.lucid.sessions
        # GIVEN the same documents inserted by pymongo and by the fast path (every BSON type the
        # gateway stores, a session as the repository makes it, and one without an _id)
        originals = (_every_kind_of_value(), _session_document())
        pairs = [(original, {**original, "_id": new_id()}) for original in originals]
        pairs.append(({"n": 1}, {"n": 1}))
        for by_pymongo, _ in pairs:
            sessions.insert_one(by_pymongo)
        sent_by_pymongo = list(inserts)
        inserts.clear()
        with commands_pymongo_ran(caplog) as ran:
            for _, fast in pairs:
                fast_writes.insert_one(sessions, fast)
        # THEN pymongo's operation path ran no command
        assert ran == []
        # AND the fast path gave the document without one an ObjectId, as pymongo does
        assert isinstance(pairs[-1][1]["_id"], ObjectId)
        # AND each stored document is pymongo's, field by field, in pymongo's order (_id first)
        for by_pymongo, fast in pairs:
            expected = sessions.find_one({"_id": by_pymongo["_id"]})
            stored = sessions.find_one({"_id": fast["_id"]})
            assert expected is not None
            assert stored is not None
            assert list(stored) == list(expected)
            assert next(iter(stored)) == "_id"
            for name, value in _without_id(expected).items():
                assert type(stored[name]) is type(value), name
                assert stored[name] == value, name
        # AND each command carried pymongo's fields in pymongo's order (on a standalone: no
        # txnNumber), on one connection with one session id
        for pymongo_sent, fast_sent in zip(sent_by_pymongo, inserts, strict=True):
            assert list(fast_sent) == list(pymongo_sent)
            assert fast_sent["ordered"] is True
            assert "txnNumber" not in fast_sent
            assert 0 < fast_sent["maxTimeMS"] <= 2000
        assert len({(sent["connection"], sent["lsid"]["id"]) for sent in inserts}) == 1
        client.close()


def test_the_switch_off_and_unacknowledged_writes_insert_through_pymongo(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with start_mongo_server() as server:
        ran_by_setting = {}
        for fast in (True, False):
            # GIVEN the process's database built with MONGODB_FAST_READS on, then off
            settings = Settings(JWT_SECRET_KEY=KEY, MONGODB_URI=server.uri, MONGODB_FAST_READS=fast)
            database = build_database(settings)
            owner = UserRepository(database).upsert_on_login("T" + "w" * 33, is_admin=False)
            # WHEN a session is created
            with commands_pymongo_ran(caplog) as ran:
                SessionRepository(database).create(owner["_id"], SessionCreate(name="s"))
            ran_by_setting[fast] = ran
            # AND an insert with w: 0 (no reply to wait for) is pymongo's either way
            unacknowledged = database.sessions.with_options(write_concern=WriteConcern(w=0))
            with commands_pymongo_ran(caplog) as ran:
                fast_writes.insert_one(unacknowledged, {"_id": new_id()})
            assert ran == ["insert"]
            database.client.close()
    # THEN only with it off does pymongo's own insert run (the owner check is a read by id)
    assert ran_by_setting == {True: [], False: ["insert", "find"]}


def _error_of(action: Any) -> BaseException:
    with pytest.raises(Exception) as raised:  # noqa: PT011 (the error pymongo raises, any)
        action()
    return raised.value


def _same_errors(pymongo_error: BaseException, fast_error: BaseException) -> None:
    assert type(fast_error) is type(pymongo_error)
    assert str(fast_error) == str(pymongo_error)
    assert getattr(fast_error, "code", None) == getattr(pymongo_error, "code", None)
    assert getattr(fast_error, "details", None) == getattr(pymongo_error, "details", None)


def test_a_taken_id_is_pymongos_duplicate_key_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with start_mongo_server() as server:
        inserts = _inserts(server, monkeypatch)
        client = _client(server.uri)
        sessions = client.lucid.sessions
        document = _session_document()
        sessions.insert_one(document)
        # WHEN the same id is inserted again, by pymongo and by the fast path
        by_pymongo = _error_of(lambda: sessions.insert_one(dict(document)))
        fast = _error_of(lambda: fast_writes.insert_one(sessions, dict(document)))
        # THEN both raise the same DuplicateKeyError (message, code 11000, the write error as
        # details), which the repository answers with the session created earlier
        assert isinstance(fast, DuplicateKeyError)
        _same_errors(by_pymongo, fast)
        assert fast.details is not None
        assert fast.details["code"] == 11000
        assert len(inserts) == 3  # each sent once
        # AND the next insert is served, the connection given back with the error reused or not
        fast_writes.insert_one(sessions, {"_id": new_id()})
        assert sessions.count_documents({}) == 2
        client.close()


@pytest.mark.parametrize(
    "error",
    [
        {"writeConcernError": {"code": 64, "codeName": "WriteConcernFailed",
                               "errmsg": "waiting for replication timed out",
                               "errInfo": {"wtimeout": True}}},
        {"writeConcernError": {"code": 100, "codeName": "UnsatisfiableWriteConcern",
                               "errmsg": "Not enough data-bearing nodes"}},
        CommandError(13, "not authorized on lucid to execute command { insert: 'sessions' }"),
    ],
)  # fmt: skip
def test_a_write_concern_error_or_a_refusal_is_pymongos_and_not_sent_again(
    error: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answered(command: Doc, answer: Any) -> Doc:
        if isinstance(error, CommandError):
            return error.reply()
        reply: Doc = answer()
        reply.update(error)
        return reply

    with start_mongo_server() as server:
        # GIVEN a server that answers every insert with a writeConcernError (after the write,
        # as a server does) or refuses it (ok: 0)
        inserts = _inserts(server, monkeypatch, answered)
        client = _client(server.uri)
        sessions = client.lucid.sessions
        # WHEN a document is inserted by pymongo and by the fast path
        by_pymongo = _error_of(lambda: sessions.insert_one({"_id": new_id()}))
        fast = _error_of(lambda: fast_writes.insert_one(sessions, {"_id": new_id()}))
        # THEN both raise the same exception (WTimeoutError, WriteConcernError,
        # OperationFailure), and neither sent the insert again (a standalone: no retry)
        _same_errors(by_pymongo, fast)
        expected = OperationFailure if isinstance(error, CommandError) else WriteConcernError
        assert isinstance(fast, expected)
        wtimeout = not isinstance(error, CommandError) and "errInfo" in error["writeConcernError"]
        assert isinstance(fast, WTimeoutError) == wtimeout
        assert len(inserts) == 2
        client.close()


def test_a_document_too_large_is_pymongos_error_and_never_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_mongo_server() as server:
        inserts = _inserts(server, monkeypatch)
        client = _client(server.uri)
        sessions = client.lucid.sessions
        # WHEN a document over the server's maxBsonObjectSize (and pymongo's 16 K allowance for
        # the command around it) is inserted
        huge = {"_id": new_id(), "blob": "x" * (16 * 1024 * 1024 + 20000)}
        by_pymongo = _error_of(lambda: sessions.insert_one(dict(huge)))
        fast = _error_of(lambda: fast_writes.insert_one(sessions, dict(huge)))
        # THEN pymongo's DocumentTooLarge, before anything was sent
        assert isinstance(fast, DocumentTooLarge)
        _same_errors(by_pymongo, fast)
        assert inserts == []
        client.close()


def test_a_lost_reply_on_a_standalone_is_pymongos_autoreconnect_and_never_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        sessions = client.lucid.sessions
        errors = []
        for insert in (
            lambda document: sessions.insert_one(document),
            lambda document: fast_writes.insert_one(sessions, document),
        ):
            # GIVEN a standalone that applies an insert but closes the connection before its
            # reply (a crash, a network fault)
            inserts = _inserts(server, monkeypatch, _lost_reply(applied=True))
            document = {"_id": new_id()}
            # WHEN it is inserted
            errors.append(_error_of(lambda: insert(document)))  # noqa: B023
            # THEN it was sent once (pymongo retries no write on a standalone: the server may
            # have run it, as it did), and is stored
            assert len(inserts) == 1
            assert sessions.count_documents({"_id": document["_id"]}) == 1
            # AND the next insert goes with another session (the Sessions specification: one
            # that saw a network error is never used again)
            insert({"_id": new_id()})
            assert inserts[1]["lsid"] != inserts[0]["lsid"]
            monkeypatch.undo()
        # AND the error is pymongo's (AutoReconnect: the routes' 503), without the label of a
        # write pymongo would retry
        assert isinstance(errors[1], AutoReconnect)
        assert type(errors[1]) is type(errors[0])
        assert not errors[1].has_error_label("RetryableWriteError")
        assert not errors[0].has_error_label("RetryableWriteError")
        # AND the next insert goes on another connection, none left lent out after close
        fast_writes.insert_one(sessions, {"_id": new_id()})
        client.close()
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_on_a_replica_set_primary_a_lost_reply_is_retried_with_the_same_lsid_and_txn_number(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_mongo_server() as server:
        # GIVEN a replica set's primary (retryable writes), a client of it, and its inserts
        _as_replica_set_primary(server, monkeypatch)
        client = _client(server.uri)
        sessions = client.lucid.sessions
        sessions.insert_one({"_id": new_id()})  # the handshake and first session, done
        original = server._server.backend.run
        sent = {}
        for name, insert in (
            ("pymongo", lambda document: sessions.insert_one(document)),
            ("fast", lambda document: fast_writes.insert_one(sessions, document)),
        ):
            # WHEN two documents are inserted, the first insert's reply lost before the
            # server applied it
            inserts = _inserts(server, monkeypatch, _lost_reply(applied=False))
            documents = [{"_id": new_id()}, {"_id": new_id()}]
            with commands_pymongo_ran(caplog) as ran:
                for document in documents:
                    insert(document)
            # THEN both are stored, once each
            for document in documents:
                assert sessions.count_documents({"_id": document["_id"]}) == 1
            sent[name] = [(command["lsid"]["id"], command["txnNumber"]) for command in inserts]
            if name == "fast":
                # AND only the retry went through pymongo's own send (its events and log line)
                assert ran == ["insert"]
            monkeypatch.setattr(server._server.backend, "run", original)
        # AND each sent the first insert twice with one lsid and txnNumber (the server applies
        # a transaction number once), the next insert with a session of its own (the first's
        # saw a network error: never reused)
        for name in ("pymongo", "fast"):
            first, retry, second = sent[name]
            assert retry == first, name
            assert second[0] != first[0], name
        client.close()


def test_on_a_replica_set_primary_a_labelled_refusal_is_retried_and_others_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusal = {"ok": 0.0, "code": 6, "codeName": "HostUnreachable", "errmsg": "unreachable"}
    with start_mongo_server() as server:
        _as_replica_set_primary(server, monkeypatch)
        backend = server._server.backend
        original = backend.run
        client = _client(server.uri)
        sessions = client.lucid.sessions
        sessions.insert_one({"_id": new_id()})
        outcomes: dict[tuple[bool, str], Any] = {}
        for labelled in (True, False):
            for name, insert in (
                ("pymongo", lambda document: sessions.insert_one(document)),
                ("fast", lambda document: fast_writes.insert_one(sessions, document)),
            ):
                # GIVEN a primary that refuses the next insert (ok: 0), with the server's
                # RetryableWriteError label (MongoDB 4.4+ labels the errors a driver retries)
                # or without
                count = [0]
                labels = {"errorLabels": ["RetryableWriteError"]} if labelled else {}

                def refuse_once(command: Doc, answer: Any, count: list[int] = count) -> Doc:
                    count[0] += 1
                    return refusal | labels if count[0] == 1 else answer()  # noqa: B023

                inserts = _inserts(server, monkeypatch, refuse_once)
                # WHEN a document is inserted, then another
                document = {"_id": new_id()}
                try:
                    insert(document)
                    outcome: Any = "stored"
                except OperationFailure as error:
                    outcome = (type(error), str(error), error.code)
                insert({"_id": new_id()})
                sent = [(command["lsid"]["id"], command["txnNumber"]) for command in inserts]
                outcomes[labelled, name] = (outcome, sent)
                monkeypatch.setattr(backend, "run", original)
        # THEN labelled, each sent it twice with one lsid and txnNumber and it was stored;
        # unlabelled, each raised the same OperationFailure after one attempt
        for name in ("pymongo", "fast"):
            outcome, sent = outcomes[True, name]
            assert outcome == "stored"
            assert len(sent) == 3
            assert sent[1] == sent[0]
            outcome, sent = outcomes[False, name]
            assert outcome == (OperationFailure, outcomes[False, "pymongo"][0][1], 6)
            assert len(sent) == 2
        # AND the fast path's retried session was not handed on while its retry used it (it is
        # dropped after: the next insert took another; pymongo pools it again after its retry)
        _, sent = outcomes[True, "fast"]
        assert sent[2][0] != sent[0][0]
        client.close()


def test_a_primary_that_became_a_standalone_before_the_retry_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_mongo_server() as server:
        backend = server._server.backend
        hello = backend.hello
        primary = [True]

        def handshake(request: Any) -> Doc:
            reply: Doc = hello(request)
            if primary[0]:
                reply |= {"setName": "rs0", "hosts": [server.uri.split("/")[2]]}
            return reply

        monkeypatch.setattr(backend, "hello", handshake)
        original = backend.run
        outcomes = []
        for insert_with in ("pymongo", "fast"):
            primary[0] = True
            connections = _Pool()
            client = _client(server.uri, event_listeners=[connections])
            sessions = client.lucid.sessions
            sessions.insert_one({"_id": new_id()})
            checked_out = connections.out

            def demoted(command: Doc, answer: Any) -> Doc:
                # GIVEN a primary that answers no insert: its connection closes, and its next
                # handshake (pymongo's monitor checks it at once) says it is a standalone
                primary[0] = False
                raise ProtocolViolationError("stepped down to a standalone")

            inserts = _inserts(server, monkeypatch, demoted)
            document = {"_id": new_id()}
            # WHEN a document is inserted
            if insert_with == "pymongo":
                error = _error_of(lambda: sessions.insert_one(document))  # noqa: B023
            else:
                error = _error_of(lambda: fast_writes.insert_one(sessions, document))  # noqa: B023
            outcomes.append((type(error), len(inserts), connections.out - checked_out))
            monkeypatch.setattr(backend, "run", original)
            client.close()
    # THEN each sent it once and raised a network error (a 503): a standalone takes no retry
    # AND the fast path raised the first attempt's error after one more checkout, where
    # pymongo 4.10 goes on checking out until timeoutMS runs out (its `_check_last_error()`
    # raises before `_write` marks the write not retryable, and the labelled error is retried
    # while CSOT has time left: mongo_client.py:2665)
    assert issubclass(outcomes[0][0], ConnectionFailure)
    assert outcomes[0][1] == 1
    assert outcomes[1] == (AutoReconnect, 1, 2)


def test_with_retry_writes_off_a_lost_reply_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_mongo_server() as server:
        _as_replica_set_primary(server, monkeypatch)
        client = _client(server.uri, retryWrites=False)
        sessions = client.lucid.sessions
        sessions.insert_one({"_id": new_id()})
        inserts = _inserts(server, monkeypatch, _lost_reply(applied=False))
        # WHEN the reply of an insert is lost on a primary, retryWrites=false
        with pytest.raises(AutoReconnect):
            fast_writes.insert_one(sessions, {"_id": new_id()})
        # THEN it was sent once, without a txnNumber, as pymongo sends it then
        assert len(inserts) == 1
        assert "txnNumber" not in inserts[0]
        client.close()


def test_a_server_restarted_between_two_inserts_gets_the_second_on_a_new_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = {"_id": new_id(), "n": 1}
    connections = _Pool()
    polling = {"heartbeatFrequencyMS": 60000, "serverMonitoringMode": "poll"}
    # GIVEN a thread holding a connection to a server that was restarted since, the connection
    # idle over a second (as pymongo looks at a pooled one before lending it)
    with _restarted_after_a_read(document, connections, 1.5, **polling) as users:
        time.sleep(1.2)
        # WHEN it inserts
        with commands_pymongo_ran(caplog) as ran:
            fast_writes.insert_one(users, {"_id": new_id(), "n": 2})
        # THEN the dead connection was closed before use and the insert went on a new one
        assert ran == []
        assert users.count_documents({}) == 2
        assert connections.reasons == ["error"]
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_a_pool_cleared_between_two_inserts_closes_the_held_connection_as_stale(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = {"_id": new_id(), "n": 3}
    connections = _Pool()
    with _restarted_after_a_read(document, connections, heartbeatFrequencyMS=500) as users:
        # GIVEN pymongo's monitor saw the restart and cleared the pool (SDAM)
        until_the_pool_is_cleared(connections)
        # WHEN the thread inserts
        with commands_pymongo_ran(caplog) as ran:
            fast_writes.insert_one(users, {"_id": new_id(), "n": 4})
        # THEN its held connection was not used: the pool closed it as stale, and the insert
        # went on a new one, without pymongo's insert
        assert "stale" in connections.reasons
        assert ran == []
        assert users.count_documents({}) == 2
    assert connections.out == connections.back
    assert connections.closed == connections.created


def test_an_insert_after_close_and_at_max_pool_size_1_is_pymongos_answer(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        inserts = _inserts(server, monkeypatch)
        client = _client(server.uri, event_listeners=[connections])
        sessions = client.lucid.sessions
        fast_writes.insert_one(sessions, {"_id": new_id()})
        # WHEN the client is closed between two inserts
        client.close()
        # THEN the held connection was closed with the pool, and the second insert is pymongo's
        # refusal, sent nowhere
        assert connections.out == connections.back
        assert connections.closed == connections.created == 1
        by_pymongo = _error_of(lambda: sessions.insert_one({"_id": new_id()}))
        fast = _error_of(lambda: fast_writes.insert_one(sessions, {"_id": new_id()}))
        _same_errors(by_pymongo, fast)
        assert isinstance(fast, InvalidOperation)
        assert len(inserts) == 1
        # AND with maxPoolSize=1 (no connection held) each insert checks the one out
        single = _client(server.uri, event_listeners=[connections], maxPoolSize=1)
        with commands_pymongo_ran(caplog) as ran:
            for _ in range(3):
                fast_writes.insert_one(single.lucid.sessions, {"_id": new_id()})
        assert ran == []
        assert connections.out == connections.back
        assert single.lucid.sessions.count_documents({}) == 4
        single.close()


def test_a_forked_child_inserts_on_its_own_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    with start_mongo_server() as server:
        inserts = _inserts(server, monkeypatch)
        client = _client(server.uri)
        sessions = client.lucid.sessions
        # GIVEN a process that holds a connection after an insert
        fast_writes.insert_one(sessions, {"_id": new_id()})

        def child_inserts() -> bool:
            fast_writes.insert_one(sessions, {"_id": new_id()})
            return True

        # WHEN it forks and the child inserts
        answer = answer_of_a_forked_child(child_inserts)
        # THEN the child's insert went on a connection of its own, with a session of its own
        assert answer == b"1"
        assert len(inserts) == 2
        assert inserts[1]["connection"] != inserts[0]["connection"]
        assert inserts[1]["lsid"] != inserts[0]["lsid"]
        # AND the parent goes on inserting on the one it holds
        fast_writes.insert_one(sessions, {"_id": new_id()})
        assert inserts[2]["connection"] == inserts[0]["connection"]
        assert sessions.count_documents({}) == 3
        client.close()


def test_threads_inserting_and_reading_leave_no_connection_out() -> None:
    connections = _Pool()
    with start_mongo_server() as server:
        client = _client(server.uri, event_listeners=[connections])
        sessions = client.lucid.sessions
        failures: list[BaseException] = []

        def create() -> None:
            try:
                for _ in range(10):
                    document = {"_id": new_id()}
                    fast_writes.insert_one(sessions, document)
                    assert fast_reads.find_one(sessions, {"_id": document["_id"]}) == document
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=create) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert sessions.count_documents({}) == 60
        assert connections.out == connections.back
        client.close()
    assert connections.closed == connections.created


def test_the_pymongo_internals_the_insert_relies_on_are_those_it_was_written_for() -> None:
    """Fails when pymongo moves (fast_writes' docstring lists them; with another pymongo
    version installed fast_reads turns itself off, and its own test says so)."""

    def parameters(function: Any) -> list[str]:
        return list(inspect.signature(function).parameters)

    assert pymongo.version == fast_reads.PINNED_PYMONGO
    assert parameters(mongo_client._add_retryable_write_error) == [
        "exc", "max_wire_version", "is_mongos"
    ]  # fmt: skip
    assert "deprioritized_servers" in parameters(mongo_client.MongoClient._select_server)
    assert parameters(helpers_shared._check_write_command_response) == ["result"]
    assert parameters(_csot.apply_write_concern) == ["cmd", "write_concern"]
    assert "session._start_retryable_write()" in inspect.getsource(
        mongo_client._ClientConnectionRetryable.run
    )
    assert "self._multiple_retries" in inspect.getsource(
        mongo_client._ClientConnectionRetryable._is_not_eligible_for_retry
    )
    assert 'command["txnNumber"] = self._server_session.transaction_id' in inspect.getsource(
        client_session.ClientSession._apply_to
    )
    session = client_session._ServerSession(0)
    session.inc_transaction_id()
    assert session.transaction_id == 1
    for name in ("is_mongos", "max_bson_size"):
        assert name in inspect.getsource(pool.Connection), name
    with start_mongo_server() as server:
        client = _client(server.uri)
        sessions: Collection[Doc] = client.lucid.sessions
        options = sessions._write_response_codec_options
        assert options.document_class is dict
        assert options.tz_aware == sessions.codec_options.tz_aware
        client.close()
