"""An embedded MongoDB for the local stage: mongomock behind the real MongoDB wire protocol.

When MONGODB_URI is unset, the local edge's parent process starts ONE of these on 127.0.0.1 and
hands `EmbeddedMongo.uri` to every worker, so all workers reach the same in-memory data through
the ordinary pymongo driver. Nothing is persisted. Not a database server: no users unless a
test creates some (SCRAM-SHA-256 only; a URI naming another user is refused as a mongod
without that user refuses it: 18), no transactions,
no replication; mongomock's query and update semantics are what you get, with lookups by
`_id` and by the leading field of an index answered from hash indexes instead of scans
(`lucid_edge.local.mongo_index`), and updates refused and typed as mongod refuses and types them
where mongomock differs, `$mul` and `$bit` included (`lucid_edge.local.mongo_update`; paths
through arrays, positional `$` and arrayFilters stay mongomock's).

All commands run on the server's single event-loop thread, one after another, so every command
(findAndModify included) is atomic with respect to all clients. A lookup costs about as much
whatever the collection holds (find_one by `_id` over the wire: ~155 µs with 100 or 10,000
documents, against ~295 µs and ~11.7 ms scanning), so that one thread is rarely what a request
waits for. The signed-in routes' commands are served from the stored documents (a read by `_id`,
with or without an inclusion projection, an insert, a findAndModify or update by `_id` with `$set`
and `$inc`), not mongomock's copies: this process spends about 130 K instructions on a find_one
by `_id`, 140 K with a projection, 175 K on an insert, 225 K on the PATCH's findAndModify and
240 K on a known user's sign-in upsert (valgrind, 2026-12-05; 200, 260, 400, 980 and 470 K
before). A thread per connection was measured at 13 % fewer instructions per find and left
out: every command still has to hold one lock for its atomicity.

Spoken protocol: OP_MSG (2013) with section kinds 0 and 1 (checksum accepted, not verified;
moreToCome = no reply) and the legacy OP_QUERY (2004) / OP_REPLY (1) pair that drivers use for
their first `isMaster`. Anything else that cannot be framed closes that connection only.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
import struct
import threading
from types import TracebackType
from typing import Any, cast

import bson
import pymongo
from bson.errors import BSONError
from pymongo.database import Database

from lucid.store.documents import Document
from lucid_edge.local.mongo_commands import CommandBackend

logger = logging.getLogger("lucid_edge.local.mongo_server")

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
CHECKSUM_PRESENT, MORE_TO_COME = 1 << 0, 1 << 1
_REQUIRED_FLAG_BITS = 0xFFFF  # bits 0-15: a receiver must refuse the ones it does not know
_HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
_OP_MSG_START = struct.Struct("<IBi")  # flagBits, the first section's kind, its document's size
_STOP_TIMEOUT_SECONDS = 5.0


class EmbeddedMongoError(RuntimeError):
    """The embedded MongoDB server could not start."""


class ProtocolViolationError(ValueError):
    """A message that cannot be framed or decoded: its connection is closed."""


def _int32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<i", data, offset)[0])


def _bson_at(data: bytes, offset: int, end: int) -> tuple[Document, int]:
    size = _int32(data, offset)
    if not 5 <= size <= end - offset:
        raise ProtocolViolationError(f"BSON document of size {size} does not fit the message")
    return bson.decode(data[offset : offset + size]), offset + size


def parse_op_msg(body: bytes) -> tuple[Document, int]:
    """The command of an OP_MSG body (kind-1 sequences merged in as lists) and its flag bits."""
    flags, kind, size = _OP_MSG_START.unpack_from(body)
    if not flags and not kind and size == len(body) - 5:
        # What drivers send for every command but a batched write: no flag, one kind-0 section
        # and nothing after it. bson.decode takes "any bytes-like object that implements the
        # buffer protocol" (its docstring), so the document is not copied out first.
        return bson.decode(memoryview(body)[5:]), 0
    unknown_required = flags & _REQUIRED_FLAG_BITS & ~(CHECKSUM_PRESENT | MORE_TO_COME)
    if unknown_required:
        raise ProtocolViolationError(f"unknown required OP_MSG flag bits {unknown_required:#x}")
    end = len(body) - 4 if flags & CHECKSUM_PRESENT else len(body)
    command: Document | None = None
    sequences: Document = {}
    position = 4
    while position < end:
        kind, position = body[position], position + 1
        if kind == 0 and command is None:
            command, position = _bson_at(body, position, end)
        elif kind == 1:
            size = _int32(body, position)
            section_end = position + size
            if not 5 <= size <= end - position:
                raise ProtocolViolationError(f"document sequence of size {size} does not fit")
            name_end = body.index(b"\x00", position + 4, section_end)
            identifier = body[position + 4 : name_end].decode()
            sequences[identifier] = bson.decode_all(body[name_end + 1 : section_end])
            position = section_end
        else:
            raise ProtocolViolationError(f"unexpected OP_MSG section kind {kind}")
    if command is None or position != end:
        raise ProtocolViolationError("OP_MSG without exactly one body section")
    command.update(sequences)
    return command, flags


def parse_op_query(body: bytes) -> tuple[str, Document]:
    """(full collection name, query document) of a legacy OP_QUERY body."""
    name_end = body.index(b"\x00", 4)
    full_name = body[4:name_end].decode()
    query, _ = _bson_at(body, name_end + 9, len(body))  # skip numberToSkip, numberToReturn
    if "$query" in query:  # the wrapped form: {$query: {...}, $readPreference: ...}
        query = dict(query["$query"])
    return full_name, query


def op_msg_reply(reply: Document, request_id: int, response_to: int) -> bytes:
    """A framed OP_MSG answer: flags 0, one kind-0 section."""
    payload = bson.encode(reply)
    header = _HEADER.pack(_HEADER.size + 5 + len(payload), request_id, response_to, OP_MSG)
    return header + b"\x00\x00\x00\x00\x00" + payload


def op_reply(reply: Document, request_id: int, response_to: int) -> bytes:
    """A framed OP_REPLY carrying one document (the answer to a legacy OP_QUERY command)."""
    payload = bson.encode(reply)
    fields = struct.pack("<iqii", 0, 0, 0, 1)  # responseFlags, cursorID, startingFrom, count
    length = _HEADER.size + len(fields) + len(payload)
    return _HEADER.pack(length, request_id, response_to, OP_REPLY) + fields + payload


class _WireServer:
    """Accepts connections and runs their messages on one CommandBackend, one at a time.

    Accepting is a plain reader callback (not asyncio.start_server) so that every accepted
    socket is tracked the moment it exists: stopping then closes all of them, with no window.
    Each connection is an asyncio Protocol (`_WireConnection`) that frames the bytes as they
    arrive and answers in the same callback, rather than a task awaiting a StreamReader: every
    signed-in request makes at least one round trip here, and the stream path (a task step, two
    `readexactly` and a `drain` per message) cost this thread more than the command itself.
    """

    def __init__(self, backend: CommandBackend, listener: socket.socket) -> None:
        self.backend, self.listener = backend, listener
        self._request_ids = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._connections: set[_WireConnection] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing = False

    def answer(self, opcode: int, body: bytes, request_id: int, connection_id: int) -> bytes | None:
        """The framed reply to one message, None when the client wants none (moreToCome)."""
        try:
            if opcode == OP_MSG:
                command, flags = parse_op_msg(body)
                database = str(command.pop("$db", "admin"))
            elif opcode == OP_QUERY:
                full_name, command = parse_op_query(body)
                database, _, collection = full_name.partition(".")
                if collection != "$cmd":
                    raise ProtocolViolationError(
                        f"legacy OP_QUERY on {full_name!r} (not a command)"
                    )
            else:
                raise ProtocolViolationError(f"unsupported opcode {opcode}")
        except (ValueError, IndexError, struct.error, BSONError) as error:
            raise ProtocolViolationError(str(error)) from error
        reply = self.backend.run(command, database, connection_id)
        if opcode == OP_QUERY:
            return op_reply(reply, next(self._request_ids), request_id)
        if flags & MORE_TO_COME:
            return None
        return op_msg_reply(reply, next(self._request_ids), request_id)

    def start_accepting(self) -> None:
        """Register the listener with the running loop."""
        asyncio.get_running_loop().add_reader(self.listener, self._accept)

    def _accept(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):  # pragma: no cover
            return  # the client left before it was accepted
        except OSError as error:  # pragma: no cover - out of file descriptors: pause, not spin
            logger.error("embedded MongoDB cannot accept connections: %s", error)
            loop = asyncio.get_running_loop()
            loop.remove_reader(self.listener)
            loop.call_later(1.0, loop.add_reader, self.listener, self._accept)
            return
        loop = asyncio.get_running_loop()
        protocol = _WireConnection(self, next(self._connection_ids), loop.create_future())
        self._connections.add(protocol)
        self._tasks.add(protocol.finished)
        protocol.finished.add_done_callback(self._tasks.discard)
        accepting = loop.create_task(loop.connect_accepted_socket(lambda: protocol, connection))
        accepting.add_done_callback(functools.partial(_accepted, protocol, connection))

    async def close(self) -> None:
        """Stop accepting, close every connection and wait until their handlers are done."""
        asyncio.get_running_loop().remove_reader(self.listener)
        self.listener.close()
        self._closing = True  # connections not yet made close at once
        for connection in list(self._connections):
            connection.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _accepted(
    protocol: _WireConnection, connection: socket.socket, task: asyncio.Task[Any]
) -> None:
    """After `connect_accepted_socket`: a socket it could not wrap is closed and forgotten."""
    if task.cancelled() or task.exception() is not None:  # pragma: no cover - loop shutting down
        connection.close()
        protocol.connection_lost(None)


class _WireConnection(asyncio.Protocol):
    """One client connection: frames messages from the bytes received and answers each in turn.

    Messages are answered in the order they arrive, on the server's one thread, so commands stay
    atomic with respect to every client. A message that cannot be framed closes this connection
    only; when the client stops reading replies, reading its requests pauses too.
    """

    def __init__(self, server: _WireServer, connection_id: int, finished: asyncio.Future[None]):
        self.server, self.connection_id, self.finished = server, connection_id, finished
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.server._closing:
            transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        try:
            while len(buffer) - start >= _HEADER.size:
                length, request_id, _, opcode = _HEADER.unpack_from(buffer, start)
                if not _HEADER.size < length <= self.server.backend.max_message_size:
                    raise ProtocolViolationError(f"message length {length} out of range")
                end = start + length
                if len(buffer) < end:
                    break
                body = bytes(buffer[start + _HEADER.size : end])
                start = end
                answer = self.server.answer(opcode, body, request_id, self.connection_id)
                if answer is not None and self.transport is not None:
                    self.transport.write(answer)
        except ProtocolViolationError as error:
            logger.warning("closing MongoDB wire connection %d: %s", self.connection_id, error)
            self.close()
        except Exception:  # pragma: no cover - a bug in one reply costs one connection, loudly
            logger.exception("embedded MongoDB connection %d failed", self.connection_id)
            self.close()
        finally:
            del buffer[:start]

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._buffer.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        if not self.finished.done():
            self.finished.set_result(None)


class EmbeddedMongo:
    """A running embedded MongoDB (a daemon thread of this process); `stop()` ends it."""

    def __init__(
        self,
        listener: socket.socket,
        *,
        requires_auth: bool = False,
        users: dict[str, str] | None = None,
    ) -> None:
        self.port = int(listener.getsockname()[1])
        backend = CommandBackend(requires_auth=requires_auth, users=dict(users or {}))
        self._server = _WireServer(backend, listener)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="lucid-mongo-wire", daemon=True)

    @property
    def uri(self) -> str:
        """The mongodb:// URI every worker hands to pymongo."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        self._server.start_accepting()
        self._ready.set()
        await self._stopping.wait()
        await self._server.close()

    def start(self) -> EmbeddedMongo:
        """Start serving in the background thread; return once it accepts connections."""
        self._thread.start()
        self._ready.wait()
        if not self._thread.is_alive():  # pragma: no cover - its loop failed; the thread logged why
            self._server.listener.close()
            raise EmbeddedMongoError("the embedded MongoDB thread ended at start")
        logger.warning(
            "MONGODB_URI is unset: serving an IN-MEMORY MongoDB (mongomock) at %s; "
            "NOTHING IS PERSISTED. Set MONGODB_URI to use a real server.",
            self.uri,
        )
        return self

    def stop(self) -> None:
        """Close every connection, stop listening, drop all data; safe to call twice."""
        loop, stopping = self._loop, self._stopping
        if self._thread.is_alive() and loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
            self._thread.join(_STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> EmbeddedMongo:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_mongo_server(
    port: int | None = None, *, requires_auth: bool = False, users: dict[str, str] | None = None
) -> EmbeddedMongo:
    """Serve one shared in-memory MongoDB on 127.0.0.1 (a free port unless given) in a thread;
    `requires_auth`: refuse every command before sign-in, as a mongod with authorization on
    refuses a client that has not signed in; `users` (name -> password): who can sign in,
    with SCRAM-SHA-256 on the admin database (`CommandBackend`)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port or 0))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise EmbeddedMongoError(
            f"the embedded MongoDB cannot listen on port {port}: {error}"
        ) from error
    listener.setblocking(False)
    # A worker forked from the parent must not keep the port listening after the parent stops.
    os.register_at_fork(after_in_child=listener.close)
    return EmbeddedMongo(listener, requires_auth=requires_auth, users=users).start()


_shared: tuple[EmbeddedMongo, pymongo.MongoClient[Document]] | None = None
_shared_lock = threading.Lock()


def in_memory_database(name: str = "lucid") -> Database[Document]:
    """A fresh, empty database for a test, on this process's embedded MongoDB (started on first
    use) through pymongo and the wire protocol, as every function reaches MongoDB: what the
    driver or a real server refuses (a value BSON cannot hold, overlapping update paths, index
    conflicts) is refused here too, which mongomock called in-process never did. NOTHING IS
    PERSISTED."""
    global _shared
    with _shared_lock:
        if _shared is None:
            server = start_mongo_server()
            _shared = server, pymongo.MongoClient(server.uri, tz_aware=True, timeoutMS=30_000)
        client = _shared[1]
    return client[f"{name}_{os.urandom(6).hex()}"]
