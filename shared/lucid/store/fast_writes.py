"""POST /sessions's insert: one OP_MSG `insert` on the connection `lucid.store.fast_reads` holds.

pymongo's `Collection.insert_one` costs about 415 K instructions of client CPU per call
(valgrind, 1,000 inserts against the in-memory MongoDB): an implicit session, the retryable-write
machinery (`_retryable_write`, `_ClientConnectionRetryable`), server selection, checkout, the
CSOT context, command monitoring and logging checks, the message builder and reply decoding
through its general paths. The same insert sent here on the thread's held connection (the
lease of `fast_reads`: the same server selection, the same checks of the connection before each
use, the same hand-backs) costs about 130 K, of which the raw OP_MSG round trip is about 90 K.

What it sends is what pymongo's `insert_one` sends (pymongo/synchronous/collection.py:796
`_insert_one`, pool.py:479 `Connection.command`, network.py:71 `command`, message.py `_op_msg`):
`insert`, `ordered: true`, the implicit session's `lsid`, a `txnNumber` where pymongo sends one,
the gossiped `$clusterTime`, `maxTimeMS` (CSOT), the collection's `writeConcern` unless it is the
server's default (`_csot.apply_write_concern`), `$db`, and the document in an OP_MSG document
sequence (section kind 1, `documents`), encoded at the top level with the collection's codec
options as pymongo encodes it (`_id` first). A document without `_id` gets an ObjectId first, as
`insert_one` gives it one (collection.py:898). The reply is checked by pymongo's own functions
(`_check_command_response`, then `_check_write_command_response`), so an `ok: 0`, a
`writeErrors` entry (11000: DuplicateKeyError, with pymongo's message, code and details) and a
`writeConcernError` (WriteConcernError, WTimeoutError) are the exceptions pymongo raises, raised
inside the lease so that SDAM's rules run on them as they would in pymongo's checkout.

Retryable writes (the Retryable Writes specification; pymongo mongo_client.py:1763
`_retry_with_session`, 2500 `_ClientConnectionRetryable`, client_session.py:993 `_apply_to`):
with `retryWrites` on (the default) the held server session's transaction number is incremented
before each insert, as `_ClientConnectionRetryable.run` increments it before selecting a server,
and sent as `txnNumber` to a server that supports retryable writes (a replica set's primary or a
mongos: server_description.py:246 `retryable_writes_supported`), never to a standalone.

What a fault does, by when it happened:
- before the whole message was handed to the socket (the server not one served, an encoding
  error, a document too large, no time left for maxTimeMS, a send that failed: an incomplete
  message the server never runs, its connection closed): nothing reached the server, so the
  insert is pymongo's `insert_one`, whose answer or exception the caller gets, within the same
  CSOT deadline (as a read falls back).
- after: the server may have run it, so it is never sent afresh. The error is the one pymongo
  raises (a lost connection: AutoReconnect or NetworkTimeout from the connection's own
  `_raise_connection_failure`); where pymongo would retry it (retryable writes in force and the
  error labelled RetryableWriteError by pymongo's `_add_retryable_write_error`: any network
  error, or the labels the server sent) it is retried as pymongo retries it (`_retry`): the same
  command with the same `lsid` and `txnNumber`, on a server selected again and a connection of
  pymongo's checkout, sent by pymongo's `Connection.command`, and again while the error is
  retryable and the deadline has time left (under CSOT pymongo retries more than once:
  `_multiple_retries`); the server applies a transaction number once. On a standalone pymongo
  does not retry a write, and neither does this: the error is raised (a 503 from the routes).
  The server session of a write that is retried is marked dirty first, so the lease's hand-back
  does not return it to the pool while the retry still uses it; it is then discarded, where
  pymongo would pool it again (a server session the server expires after 30 minutes).

Inserts it serves publish no command monitoring events and no `pymongo.command` log lines
(a retry, sent by pymongo's Connection.command, publishes them: the first attempt's do not
exist); the pool's CMAP events are the lease's, as for the reads. Unacknowledged writes
(`w: 0`) are pymongo's. MONGODB_FAST_READS=false makes every insert pymongo's too.

PRIVATE pymongo API, pinned with fast_reads' (PINNED_PYMONGO; tests/shared/store/
test_fast_writes.py fails when one of these moves), besides those fast_reads lists:
    pymongo/synchronous/collection.py:254 `_write_response_codec_options`
    pymongo/synchronous/mongo_client.py:2385 `_add_retryable_write_error`, 1616 `_select_server`
        (`deprioritized_servers`); client_session.py:1101 `_ServerSession.inc_transaction_id`,
        `transaction_id`; pool.py `Connection.is_mongos`, `max_bson_size`
    pymongo/_csot.py:124 `apply_write_concern`, `remaining`
    pymongo/helpers_shared.py:280 `_check_write_command_response`
"""

from __future__ import annotations

import struct
import time
from typing import Any

import bson
from bson.objectid import ObjectId
from pymongo import _csot
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError
from pymongo.helpers_shared import _check_command_response, _check_write_command_response
from pymongo.server_selectors import writable_server_selector
from pymongo.synchronous.mongo_client import _add_retryable_write_error, _MongoClientErrorHandler
from pymongo.topology_description import TOPOLOGY_TYPE

from lucid.store import fast_reads
from lucid.store.documents import Document

# An OP_MSG section of kind 1: the kind byte, then the section's size (itself included), then
# the sequence's name (a C string) and its documents.
_SEQUENCE = struct.Struct("<Bi")
_DOCUMENTS = b"documents\x00"
_RETRYABLE = "RetryableWriteError"
_NO_WRITES = "NoWritesPerformed"


def insert_one(collection: Collection[Document], document: Document) -> None:
    """What `collection.insert_one(document)` does, through the fast path when it serves the
    insert (see the module docstring), else through pymongo."""
    client = collection.database.client
    reader = fast_reads.reader_of(client)
    if reader is None or not collection.write_concern.acknowledged:
        collection.insert_one(document)
        return
    if "_id" not in document:
        document["_id"] = ObjectId()
    insert = _Insert(collection, document)
    # One deadline for every attempt, pymongo's included (as fast_reads.find_one).
    with _csot._TimeoutContext(client.options.timeout):
        try:
            reader.run(insert)
        except Exception as error:
            if not insert.sent:  # nothing reached the server: pymongo inserts it
                collection.insert_one(document)
            elif isinstance(error, PyMongoError) and error.has_error_label(_RETRYABLE):
                _retry(insert, error)
            else:
                raise


class _Insert:
    """One insert, made by `fast_reads._Reader.run` on a connection (`__call__`), and what a
    retry of it needs: the session and transaction number it was sent with."""

    __slots__ = (
        "collection", "document", "is_mongos", "max_wire_version", "sent", "server", "session",
        "txn_number",
    )  # fmt: skip

    def __init__(self, collection: Collection[Document], document: Document) -> None:
        self.collection = collection
        self.document = document
        self.sent = False  # the whole message handed to the socket: the server may have run it
        self.session: Any = None
        self.txn_number: Any = None  # sent as txnNumber: the write is retryable
        self.server: Any = None
        self.max_wire_version = 0
        self.is_mongos = False

    def __call__(self, conn: Any, server: Any, session: Any) -> None:
        collection = self.collection
        client = collection.database.client
        options = collection._write_response_codec_options
        document = bson.encode(self.document, codec_options=options)
        if len(document) > conn.max_bson_size:  # pymongo's DocumentTooLarge, not sent
            raise fast_reads._NotServedError
        size = _SEQUENCE.size - 1 + len(_DOCUMENTS) + len(document)
        sequence = _SEQUENCE.pack(1, size) + _DOCUMENTS + document
        command: Document = {"insert": collection.name, "ordered": True}
        if session is not None:
            if client.options.retry_writes:
                # `_ClientConnectionRetryable.run` (mongo_client.py:2540) increments it before
                # it selects a server, whether or not the server takes retryable writes.
                session.inc_transaction_id()
                if server.description.retryable_writes_supported:
                    self.txn_number = session.transaction_id
            # As ClientSession._apply_to (client_session.py:993) for a write.
            session.last_use = time.monotonic()
            command["lsid"] = session.session_id
            if self.txn_number is not None:
                command["txnNumber"] = self.txn_number
        client._send_cluster_time(command, None)
        remaining, command["maxTimeMS"] = fast_reads.time_left(conn, server)
        _csot.apply_write_concern(command, collection.write_concern)
        command["$db"] = collection.database.name
        body = bson.encode(command, codec_options=options)
        self.session, self.server = session, server
        self.max_wire_version, self.is_mongos = conn.max_wire_version, conn.is_mongos
        try:
            request_id = fast_reads.send(conn, body, sequence, remaining)
            self.sent = True
            reply = fast_reads.reply(conn, request_id, options)
        except ConnectionFailure as error:
            if session is not None:
                session.mark_dirty()  # as pymongo's handler: never reused after a network error
            self._label_retryable(error)
            raise
        if "$clusterTime" in reply:
            client._topology.receive_cluster_time(reply["$clusterTime"])
        try:
            _check_command_response(reply, conn.max_wire_version)
            _check_write_command_response(reply)
        except PyMongoError as error:
            self._label_retryable(error)
            raise

    def _label_retryable(self, error: PyMongoError) -> None:
        # pymongo's `_write` (mongo_client.py:2676): a retryable write's error gets the
        # RetryableWriteError label where the rules give it one; a session whose write is
        # retried is kept out of the pool meanwhile (the module docstring).
        if self.txn_number is None:  # not a retryable write: pymongo labels nothing
            return
        _add_retryable_write_error(error, self.max_wire_version, self.is_mongos)
        if error.has_error_label(_RETRYABLE):
            self.session.mark_dirty()

    def again(self) -> Document:
        """The command of a retry, for pymongo's Connection.command to complete and send."""
        return {
            "insert": self.collection.name,
            "ordered": True,
            "documents": [self.document],
            "lsid": self.session.session_id,
            "txnNumber": self.txn_number,
        }


def _retry(insert: _Insert, error: PyMongoError) -> None:
    """pymongo's retry of a write whose attempt failed with a retryable error
    (`_ClientConnectionRetryable.run` and `_write`, mongo_client.py:2540-2690): the same insert,
    same `lsid` and `txnNumber`, on a server selected again and a connection checked out through
    pymongo's `_MongoClientErrorHandler` and pool, sent by `Connection.command`; again while
    the error is retryable and the CSOT deadline has time left; else pymongo's exception (the
    earlier error where the later one says NoWritesPerformed, or where no server is found)."""
    collection = insert.collection
    client = collection.database.client
    last = error
    server = insert.server
    deprioritized: list[Any] = []
    while True:
        remaining = _csot.remaining()
        if remaining is not None and remaining <= 0:
            raise last
        if client.topology_description.topology_type == TOPOLOGY_TYPE.Sharded:
            deprioritized.append(server)
        try:
            server = client._select_server(
                writable_server_selector, None, "insert", deprioritized_servers=deprioritized
            )
        except ServerSelectionTimeoutError as timeout:
            # "The application may think the write was never attempted if we raise
            # ServerSelectionTimeoutError on the retry attempt" (pymongo's comment).
            raise last from timeout
        max_wire_version, is_mongos = 0, False
        try:
            with (
                _MongoClientErrorHandler(client, server, None) as handler,
                server.checkout(handler=handler) as conn,
            ):
                handler.contribute_socket(conn)
                max_wire_version, is_mongos = conn.max_wire_version, conn.is_mongos
                if not (server.description.retryable_writes_supported and conn.supports_sessions):
                    raise last  # pymongo's `_check_last_error()`: no retry possible here
                reply = conn.command(
                    collection.database.name,
                    insert.again(),
                    write_concern=collection.write_concern,
                    codec_options=collection._write_response_codec_options,
                    client=client,
                )
                _check_write_command_response(reply)
                return
        except PyMongoError as failure:
            if failure is last:
                raise
            _add_retryable_write_error(failure, max_wire_version, is_mongos)
            if not failure.has_error_label(_RETRYABLE):
                if failure.has_error_label(_NO_WRITES):
                    raise last from failure
                raise
            if not failure.has_error_label(_NO_WRITES):
                last = failure
