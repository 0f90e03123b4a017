"""The retries of the session's insert (`lucid.store.fast_writes._retry`) that the other tests
do not reach, each against what pymongo's own `insert_one` does in the same case, over the wire
with the in-memory MongoDB, its handshake made a mongos's or a replica set member's: a mongos
that failed is deprioritised for the retry, an error labelled NoWritesPerformed gives way to
the error before it, and a retry that finds no server raises the error of the write it
retried."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import AutoReconnect, OperationFailure
from pymongo.topology_description import TOPOLOGY_TYPE

from lucid.store import fast_writes
from lucid.store.documents import new_id
from lucid_edge.local import start_mongo_server
from lucid_edge.local.mongo_server import ProtocolViolationError
from tests.shared.store.test_fast_reads import _client
from tests.shared.store.test_fast_writes import (
    _as_replica_set_primary,
    _error_of,
    _inserts,
    _lost_reply,
)

Doc = dict[str, Any]
# A refusal (ok: 0) no driver retries unless a label says so.
_REFUSAL = {"ok": 0.0, "code": 2, "codeName": "BadValue", "errmsg": "refused"}


def _inserters(client: MongoClient[Doc]) -> list[tuple[str, Any]]:
    sessions = client.lucid.sessions
    return [
        ("pymongo", lambda document: sessions.insert_one(document)),
        ("fast", lambda document: fast_writes.insert_one(sessions, document)),
    ]


def _as_mongos(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's handshake says: a mongos (`msg: isdbgrid`), so a client not connected
    directly sees a sharded cluster of one mongos."""
    backend = server._server.backend
    hello = backend.hello

    def mongos(request: Any) -> Doc:
        reply: Doc = hello(request)
        return reply | {"msg": "isdbgrid"}

    monkeypatch.setattr(backend, "hello", mongos)


def test_on_a_mongos_the_retry_deprioritises_the_mongos_that_failed_as_pymongo_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_mongo_server() as server:
        # GIVEN a sharded cluster of one mongos (retryable writes), a client of it
        _as_mongos(server, monkeypatch)
        client = _client(server.uri, directConnection=False)
        client.lucid.sessions.insert_one({"_id": new_id()})
        assert client.topology_description.topology_type == TOPOLOGY_TYPE.Sharded
        # AND the servers each selection was told to deprioritise
        select = client._select_server
        deprioritised: list[list[Any]] = []

        def selecting(*args: Any, **kwargs: Any) -> Any:
            servers = kwargs.get("deprioritized_servers") or ()
            deprioritised.append([server.description.address for server in servers])
            return select(*args, **kwargs)

        monkeypatch.setattr(client, "_select_server", selecting)
        original = server._server.backend.run
        outcomes = {}
        for name, insert in _inserters(client):
            # WHEN a document is inserted, the first insert's reply lost before the mongos
            # applied it
            inserts = _inserts(server, monkeypatch, _lost_reply(applied=False))
            deprioritised.clear()
            document = {"_id": new_id()}
            insert(document)
            retry_deprioritised = deprioritised[-1]
            stored = client.lucid.sessions.count_documents({"_id": document["_id"]})
            sent = [(command["lsid"]["id"], command["txnNumber"]) for command in inserts]
            outcomes[name] = (stored, sent, retry_deprioritised)
            monkeypatch.setattr(server._server.backend, "run", original)
        # THEN each retried it once with the same lsid and txnNumber, and stored it once
        # AND the retry's selection deprioritised the mongos that failed (the only one: the
        # Retryable Writes specification then selects it again)
        address = next(iter(client.topology_description.server_descriptions()))
        for name in ("pymongo", "fast"):
            stored, sent, last = outcomes[name]
            assert stored == 1, name
            assert len(sent) == 2, name
            assert sent[1] == sent[0], name
            assert last == [address], name
        client.close()


def _refusals(*labels: tuple[str, ...] | None) -> Any:
    """A fault: the first insert's connection closes before the server applied it, the next
    ones are refused with the labels given (None: answered)."""
    count = [0]

    def fault(command: Doc, answer: Any) -> Doc:
        count[0] += 1
        if count[0] == 1:
            raise ProtocolViolationError("the reply is lost")
        given = labels[count[0] - 2] if count[0] - 2 < len(labels) else None
        if given is None:
            return answer()  # type: ignore[no-any-return]
        return _REFUSAL | {"errorLabels": list(given)}

    return fault


@pytest.mark.parametrize(
    ("labels", "raised"),
    [
        # the retry refused, no retry left to try: the network error of the first attempt
        ((("NoWritesPerformed",),), AutoReconnect),
        # retried again (timeoutMS: pymongo retries while time is left), the last refusal
        # labelled NoWritesPerformed too: still the first attempt's error
        ((("RetryableWriteError", "NoWritesPerformed"), ("NoWritesPerformed",)), AutoReconnect),
        # the last refusal without that label: the refusal itself
        ((("RetryableWriteError", "NoWritesPerformed"), ()), OperationFailure),
    ],
)
def test_a_retry_that_performed_no_write_raises_the_error_before_it_as_pymongo_does(
    monkeypatch: pytest.MonkeyPatch, labels: tuple[tuple[str, ...], ...], raised: type
) -> None:
    with start_mongo_server() as server:
        # GIVEN a replica set's primary, a client of it
        _as_replica_set_primary(server, monkeypatch)
        client = _client(server.uri)
        client.lucid.sessions.insert_one({"_id": new_id()})
        original = server._server.backend.run
        outcomes = {}
        for name, insert in _inserters(client):
            # WHEN the first insert's connection closes before the write and each retry is
            # refused with those labels
            inserts = _inserts(server, monkeypatch, _refusals(*labels))
            document = {"_id": new_id()}
            error = _error_of(lambda: insert(document))  # noqa: B023
            stored = client.lucid.sessions.count_documents({"_id": document["_id"]})
            outcomes[name] = (type(error), str(error), len(inserts), stored)
            monkeypatch.setattr(server._server.backend, "run", original)
        # THEN the fast path raised what pymongo raised, after as many attempts, nothing stored
        assert outcomes["fast"] == outcomes["pymongo"]
        assert outcomes["fast"][0] is raised
        assert outcomes["fast"][2:] == (1 + len(labels), 0)
        client.close()


def test_a_retry_that_finds_no_writable_server_raises_the_write_s_error_as_pymongo_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_mongo_server() as server:
        backend = server._server.backend
        hello = backend.hello
        host = server.uri.split("/")[2]
        primary = [True]

        def handshake(request: Any) -> Doc:
            reply: Doc = hello(request)
            if primary[0]:
                return reply | {"setName": "rs0", "hosts": [host]}
            # the primary field is `ismaster` in a legacy handshake, `isWritablePrimary` else
            demoted = {
                field: False for field in ("ismaster", "isWritablePrimary") if field in reply
            }
            return reply | {"setName": "rs0", "hosts": [host], "secondary": True, **demoted}

        monkeypatch.setattr(backend, "hello", handshake)
        original = backend.run
        outcomes = {}
        for name in ("pymongo", "fast"):
            # GIVEN a replica set of one member, its primary, a client of it (timeoutMS 2000)
            primary[0] = True
            client = _client(server.uri, directConnection=False)
            client.lucid.sessions.insert_one({"_id": new_id()})
            assert client.topology_description.topology_type == TOPOLOGY_TYPE.ReplicaSetWithPrimary

            def stepped_down(command: Doc, answer: Any) -> Doc:
                # the primary steps down as it gets the insert: the connection closes, and the
                # next handshake says secondary (no primary to retry on before the deadline)
                primary[0] = False
                raise ProtocolViolationError("stepped down")

            inserts = _inserts(server, monkeypatch, stepped_down)
            inserter = dict(_inserters(client))[name]
            document = {"_id": new_id()}
            # WHEN a document is inserted
            error = _error_of(lambda: inserter(document))  # noqa: B023
            outcomes[name] = (type(error), str(error), len(inserts))
            monkeypatch.setattr(backend, "run", original)
            client.close()
        # THEN each sent it once and raised the network error of that attempt (not the server
        # selection's timeout: the application could take the write for never attempted)
        assert outcomes["fast"] == outcomes["pymongo"]
        assert outcomes["fast"][0] is AutoReconnect
        assert outcomes["fast"][2] == 1
