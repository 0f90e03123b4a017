"""By-id reads of the signed-in hot path: one OP_MSG `find` on a connection of pymongo's own pool.

pymongo's `Collection.find_one` costs about 440 K instructions of client CPU per call (in-memory
MongoDB, valgrind): a cursor, an implicit session, server selection, pool checkout, the CSOT
context, command monitoring and logging checks, SDAM error handling and reply decoding through
its general paths. The raw round trip (encode, send, receive, decode) is about 47 K. A signed-in
GET makes one such read per request, so `find_one` here sends the `find` itself, on a connection
pymongo selected, connected, authenticated and will check back in, and keeps everything that makes
a real MONGODB_URI work in pymongo: connection establishment, authentication (SCRAM, X.509, AWS),
TLS, SRV, server selection and monitoring (SDAM), error classification, and the retryable read.

What it sends is what pymongo's `find_one` sends (`find`, `filter`, optional `projection`,
`limit: 1`, `singleBatch: true`, `maxTimeMS`, `$db`, the implicit session's `lsid`, the gossiped
`$clusterTime`), and the document it returns is decoded with the collection's own codec options,
so it is the document pymongo would return. It serves only where that is sound, and otherwise
hands the read to pymongo untouched (`_serves_collection`, `_serves_connection`): primary read
preference and no read concern (the client's defaults), a client with `timeoutMS` (CSOT: ours
always has one), no auto-encryption, no `serverApi`, no negotiated compressor (with one, "All
other messages MUST be compressed" and the server "MAY reply to any and all requests using the
selected compressor": mongodb/specifications source/compression/OP_COMPRESSED.md), a server that
is a standalone, a replica set's primary or a mongos (never `loadBalanced=true`: its connections
carry a service id that pins cursors and error handling; never a secondary reached through
`directConnection`, which pymongo reads with `$readPreference: primaryPreferred`).

What is held, per thread, between reads (`_Lease`): the server selected for a primary read
(kept while the client's topology description is the same object: SDAM replaces it on any
heartbeat or change, and the read then selects again); one connection, checked out through
pymongo's own checkout context (`Pool.checkout`, entered, left open, and left with the read's
exception or without one when handed back), so the pool counts it as checked out; and one
implicit server session from pymongo's session pool, whose `lsid` its reads send. What is checked
before each read, as the pool checks a connection it lends (`Pool._get_conn`, `_perished`): the
server is still the one selected (another primary or mongos, or a forked child, whose client
pymongo gives a new topology, hands it back), the pool's generation (a cleared or closed pool:
the check-in then closes it as stale), maxIdleTimeMS, and, when it sat over a second, whether
the server closed the socket (both: closed, and a new one checked out); the session is replaced
when it has under a minute to live (the Sessions specification). It is handed back (the
check-in) when its thread ends (`_Holder.__del__`), when the client closes (`client.close()`
hands back every lease not in a read, before and after pymongo's own close; a read that was
in progress hands its own back), and after any failure of a read on it, through the checkout
context with the exception (SDAM's rules run). At most half of maxPoolSize is held by a
client's threads: the other half stays for pymongo's own operations, those of the holding
threads included, so no thread waits on a connection held by a thread that waits in turn
(maxPoolSize=1 holds none); a thread over that share checks a connection out for each read.

Faults keep pymongo's behaviour exactly: any failure of the fast path (a network error, a
timeout, an `ok: 0` reply, an unexpected reply, a non-zero cursor id) leaves the checkout
context with the exception, so pymongo's `_MongoClientErrorHandler` runs the SDAM error rules
(marks the server Unknown, clears the pool, as it would for its own read), and the read is then
made by the ordinary `Collection.find_one`, whose answer or exception the caller gets: the 503s,
their words and the log lines stay those of pymongo. Both attempts run under ONE CSOT deadline
(`_csot._TimeoutContext` of the client's `timeoutMS`, which pymongo's own `@_csot.apply` reuses
when a deadline is already set: pymongo/_csot.py `apply`), so a fast attempt that timed out
leaves pymongo only what remains of MONGODB_TIMEOUT_MS: the bound the README promises holds.

Reads it serves publish no command monitoring events and no `pymongo.command` log lines (the
pool's CMAP events are still published by pymongo's checkout and check-in: one pair per lease,
not per read). MONGODB_FAST_READS=false makes
every read pymongo's (`configure`). POST /sessions's insert goes on the same lease
(`lucid.store.fast_writes`, through `_Reader.run`, `send` and `reply`).

PRIVATE pymongo API, pinned to pymongo 4.10.1 (PINNED_PYMONGO); with any other version the fast
path is off and every read is pymongo's. tests/shared/store/test_fast_reads.py fails loudly when
the installed version or one of these internals changes; read them again before moving the pin:
    pymongo/synchronous/mongo_client.py:1616 `MongoClient._select_server(selector, session, op)`
    pymongo/synchronous/mongo_client.py:1583 `MongoClient._checkout(server, session)`: the
        checkout context, with `_MongoClientErrorHandler` (2420) running SDAM's rules on exit
    pymongo/synchronous/mongo_client.py:1256 `_send_cluster_time`, topology.py:647
        `receive_cluster_time`, topology.py:754/758 `get_server_session`/`return_server_session`
    pymongo/synchronous/pool.py:256 `Connection` (`conn`, `set_conn_timeout` 316,
        `_raise_connection_failure` 739, `close_conn` 676, `supports_sessions`,
        `logical_session_timeout_minutes`, `compression_context`, `op_msg_enabled`,
        `max_wire_version`, `max_message_size`), and `apply_timeout` (323), whose maxTimeMS and
        socket timeout rule is copied here
    pymongo/synchronous/pool.py:1304 `Pool.checkout` (its context kept open for a lease),
        1533 `checkin` (its `update_last_checkin_time`, mirrored per read), 1605 `_perished`
        (its checks, made per read: `opts.max_idle_time_seconds`, `_check_interval_seconds`,
        `Connection.conn_closed`/`last_checkin_time`, 1175 `stale_generation` with
        `Connection.generation`/`service_id`), 1074 `_reset` (bumps the generation on clear
        and close), `max_pool_size`, `state` (`PoolState.CLOSED`)
    pymongo/synchronous/mongo_client.py:926 `_after_fork` (a new topology in a child),
        1537 `close` (the pools close their idle connections only), `_MongoClientErrorHandler
        .handle`; client_session.py:1087 `_ServerSession.timed_out`, `mark_dirty`
    pymongo/lock.py `_create_lock` (released in a forked child by `_after_fork_child`)
    pymongo/_csot.py `_TimeoutContext` (what its __enter__/__exit__ do with `TIMEOUT`,
        `DEADLINE` and `RTT`, repeated in `find_one`), `get_rtt`, `get_deadline`
    pymongo/helpers_shared.py:183 `_check_command_response`
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import bson
import pymongo
from pymongo import _csot
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, ExecutionTimeout, ProtocolError
from pymongo.helpers_shared import _check_command_response
from pymongo.lock import _create_lock
from pymongo.mongo_client import MongoClient
from pymongo.monitoring import ConnectionClosedReason
from pymongo.read_preferences import ReadPreference
from pymongo.server_type import SERVER_TYPE
from pymongo.synchronous.mongo_client import _MongoClientErrorHandler
from pymongo.synchronous.pool import PoolState

from lucid.store.documents import Document

PINNED_PYMONGO = "4.10.1"
# The attribute of a MongoClient that holds its `_Reader` (or False: this client's reads are
# all pymongo's). MongoClient answers any other attribute name not starting with "_" with a
# Database, so the name must start with one.
_ATTRIBUTE = "_lucid_fast_reads"
OP_MSG = 2013
_HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
_PREFIX = struct.Struct("<iiiiIB")  # the header, flagBits 0, section kind 0
_REPLY_PREFIX = 21  # header, flagBits, kind
_SERVED_TYPES = frozenset({SERVER_TYPE.Standalone, SERVER_TYPE.RSPrimary, SERVER_TYPE.Mongos})
_RECEIVE = 65536
_NO_DEADLINE = float("inf")  # _TimeoutContext's deadline without a timeout
_T = TypeVar("_T")
# Request ids: any int32 the connection has not got an answer to pending (one at a time here).
_request_ids = itertools.count(1)


class _NotServedError(Exception):
    """The fast path does not serve this read (before anything was sent): pymongo does."""


def configure(client: MongoClient[Any], *, enabled: bool) -> None:
    """Serve `client`'s by-id reads fast (the default) or leave them all to pymongo."""
    previous = getattr(client, _ATTRIBUTE, None)
    if isinstance(previous, _Reader):
        previous.give_all_back()
    reader = _Reader(client) if enabled and _servable(client) else False
    setattr(client, _ATTRIBUTE, reader)
    if reader and "close" not in vars(client):
        _give_back_on_close(client)


def _give_back_on_close(client: MongoClient[Any]) -> None:
    # `client.close()` closes the pools, whose `close` closes only the connections they hold
    # idle (pool.py `_reset`); the ones threads hold here are checked out, so they are handed
    # back first (then pymongo closes them with the pool's, and ends their threads' server
    # sessions with the others: MongoClient.close, mongo_client.py:1537) and again after, for a
    # read that took one between the two (its check-in into a closed pool closes it).
    # `with client:` calls `self.close()` (mongo_client.py:1402), which finds this one.
    close = client.close

    def close_and_give_back() -> None:
        reader = getattr(client, _ATTRIBUTE, None)
        if isinstance(reader, _Reader):
            reader.give_all_back()
        try:
            close()
        finally:
            if isinstance(reader, _Reader):
                reader.give_all_back()

    client.close = close_and_give_back  # type: ignore[method-assign]


def _servable(client: MongoClient[Any]) -> bool:
    # What the client's options decide for all its reads (the module docstring says why).
    if pymongo.version != PINNED_PYMONGO or not isinstance(client, MongoClient):
        return False
    pool = client.options.pool_options
    compression = pool._compression_settings
    return (
        client.options.timeout is not None
        and client._encrypter is None
        and pool.server_api is None
        and not (compression is not None and compression.compressors)
    )


def find_one(
    collection: Collection[Document], filter: Document, projection: Document | None = None
) -> Document | None:
    """What `collection.find_one(filter, projection)` returns, through the fast path when it
    serves this read (see the module docstring), else through pymongo."""
    client = collection.database.client
    reader = reader_of(client)
    if reader is None or not reader.serves(collection):
        return collection.find_one(filter, projection)
    # One deadline for the fast attempt and pymongo's, nested exactly as pymongo nests its own:
    # what `with _csot._TimeoutContext(timeout):` sets and resets (pymongo/_csot.py 78-91, the
    # same three context variables, values and order), without building the context manager
    # and calling its methods: ~16 K instructions a read through it (valgrind, CPython 3.11).
    timeout = client.options.timeout
    timeout_token = _csot.TIMEOUT.set(timeout)
    deadline = time.monotonic() + timeout if timeout else _NO_DEADLINE
    deadline_token = _csot.DEADLINE.set(min(_csot.DEADLINE.get(), deadline))
    rtt_token = _csot.RTT.set(0.0)
    try:
        try:
            return reader.find_one(collection, filter, projection)
        except Exception:  # every failure is pymongo's to answer (the module docstring)
            return collection.find_one(filter, projection)
    finally:
        _csot.TIMEOUT.reset(timeout_token)
        _csot.DEADLINE.reset(deadline_token)
        _csot.RTT.reset(rtt_token)


def reader_of(client: MongoClient[Any]) -> _Reader | None:
    """The fast path of `client` (made on first use, as `configure` makes it), None when all its
    operations are pymongo's (MONGODB_FAST_READS=false, or a client it does not serve)."""
    reader: _Reader | bool | None = getattr(client, _ATTRIBUTE, None)
    if reader is None:
        configure(client, enabled=True)
        reader = getattr(client, _ATTRIBUTE)
    return reader if isinstance(reader, _Reader) else None


class _Lease:
    """A connection a thread holds checked out between its reads: pymongo's own checkout context
    (`Pool.checkout`, pool.py:1304), entered and left open, with its error handler, and the
    implicit server session whose `lsid` the reads on it send."""

    __slots__ = ("checkout", "conn", "pool", "server", "session")

    def __init__(self, server: Any, checkout: Any, conn: Any, session: Any) -> None:
        self.server = server
        self.pool = server.pool
        self.checkout = checkout
        self.conn = conn
        self.session = session
        _leases_of(self.pool).held.add(self)


# The attribute of a pymongo Pool that holds its `_PoolLeases`.
_POOL_LEASES = "_lucid_leases"


class _PoolLeases:
    """The leases out of one pool, kept on pymongo's Pool object itself, so that a lease becomes
    garbage only together with its pool.

    A lease keeps pymongo's checkout context open: a generator (`Pool.checkout` is a
    contextlib.contextmanager), whose finalizer checks the connection in when the generator is
    collected (GeneratorExit reaches its `except BaseException`, pool.py:1352, which calls
    `checkin`, taking the pool's lock). The garbage collector runs finalizers on whichever
    thread it collects on, and that thread may be inside this pool's lock, a threading.Lock
    (pymongo/lock.py `_create_lock`) that `checkin` would then wait for forever. Only a pool no
    thread can reach is safe to check in to from the collector: that is when its leases go."""

    __slots__ = ("ended", "held")

    def __init__(self) -> None:
        self.held: set[_Lease] = set()  # every lease not handed back yet
        # Leases whose holder the garbage collector dropped on another thread (`_Holder.__del__`):
        # handed back at the next lease on this pool or the client's close(), whichever reader
        # makes it, or checked in with the pool when it is garbage.
        self.ended: deque[_Lease] = deque()


def _leases_of(pool: Any) -> _PoolLeases:
    attributes = vars(pool)
    leases: _PoolLeases | None = attributes.get(_POOL_LEASES)
    if leases is None:  # dict.setdefault is atomic: two first leases at once get the same one
        leases = attributes.setdefault(_POOL_LEASES, _PoolLeases())
    return leases


class _Holder:
    """A thread's lease (in the reader's `threading.local`). When the thread ends CPython drops
    the thread's `threading.local` values (PyThreadState_Clear, in the ending thread, before
    `Thread.join()` returns: Modules/_threadmodule.c `_localdummy_destroyed`), so this object's
    `__del__` hands the lease back then."""

    __slots__ = ("lease", "reader", "thread")

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.lease: _Lease | None = None
        self.thread = threading.get_ident()

    def __del__(self) -> None:
        lease = self.lease
        if lease is None or not self.reader.claim(lease):
            return
        if threading.get_ident() == self.thread:
            self.reader.give_back(lease)
        else:
            # Dropped by the garbage collector on another thread: its reader is garbage too (a
            # client no one closed, or a reader configure() replaced; a live reader's
            # threading.local keeps the holder of every thread alive), and so is its count of
            # leases. That thread may be inside this pool's lock: the lease waits on its pool
            # (`_PoolLeases`) to be handed back by the next lease there or close().
            _leases_of(lease.pool).ended.append(lease)


class _Reader:
    """The fast path of one client: the server last selected for a primary read, kept while the
    client's topology description is the one it was selected from, and each thread's lease."""

    __slots__ = ("_client", "_idle", "_leased", "_local", "_lock", "_selected")

    def __init__(self, client: MongoClient[Any]) -> None:
        self._client = client
        # (the topology description, the server selected from it); a new description (any
        # heartbeat, any change) selects again. A tuple, replaced whole: safe across threads.
        self._selected: tuple[Any, Any] | None = None
        self._local = threading.local()
        # The leases not in a read right now. Whoever takes a lease out of this set (its
        # thread for a read, `give_all_back` for close(), its holder's end) owns it: set.remove
        # and set.pop are atomic under the GIL, so exactly one of them does.
        self._idle: set[_Lease] = set()
        # A lock pymongo releases in a forked child, as its pools' (pymongo/lock.py
        # `_create_lock`, released by mongo_client.py `_after_fork_child`): a fork while
        # another thread held it would otherwise leave the child's first lease waiting forever.
        self._lock = _create_lock()
        self._leased = 0  # leases not handed back yet, read and written under _lock

    @staticmethod
    def serves(collection: Collection[Document]) -> bool:
        # The client's defaults, which a collection may override (`with_options`).
        return (
            collection.read_preference.mode == ReadPreference.PRIMARY.mode
            and collection.read_concern.level is None
        )

    def _server(self) -> Any:
        topology = self._client._topology
        description = topology.description
        selected = self._selected
        if selected is not None and selected[0] is description:
            return selected[1]
        server = self._client._select_server(ReadPreference.PRIMARY, None, "find")
        self._selected = (description, server)
        return server

    def find_one(
        self, collection: Collection[Document], filter: Document, projection: Document | None
    ) -> Document | None:
        # `run` with `_find` called on the lease directly: no closure made and called per read
        # (~4 K instructions; valgrind), the same steps in the same order.
        client = self._client
        server = self._server()
        if server.description.server_type not in _SERVED_TYPES:
            raise _NotServedError
        lease = self._lease(server)
        if lease is None:

            def find(conn: Any, server: Any, session: Any) -> Document | None:
                return _find(client, conn, server, collection, filter, projection, session)

            return self._checked_out(server, find)
        try:
            found = _find(client, lease.conn, server, collection, filter, projection, lease.session)
        except BaseException as error:
            self.give_back(lease, error)
            raise
        self._used(lease)
        return found

    def run(self, operation: Callable[[Any, Any, Any], _T]) -> _T:
        """`operation(conn, server, session)` on this thread's lease (a connection checked out
        for it alone at the cap); any exception hands the lease back with it (SDAM's rules run)
        and is raised. _NotServedError before anything was sent: the server is not one served."""
        server = self._server()
        if server.description.server_type not in _SERVED_TYPES:
            raise _NotServedError
        lease = self._lease(server)
        if lease is None:
            return self._checked_out(server, operation)
        try:
            result = operation(lease.conn, server, lease.session)
        except BaseException as error:
            self.give_back(lease, error)
            raise
        self._used(lease)
        return result

    def _used(self, lease: _Lease) -> None:
        """After an operation on `lease` that succeeded: idle again, or handed back when the
        client closed meanwhile."""
        # What pymongo's check-in records (pool.py:1585), so that the next read measures the
        # connection's idle time from this one, as the pool measures it from the check-in.
        lease.conn.last_checkin_time = time.monotonic()
        self._idle.add(lease)
        if lease.pool.state == PoolState.CLOSED and self.claim(lease):
            self.give_back(lease)  # close() ran during the read and did not see it

    def _checked_out(self, server: Any, operation: Callable[[Any, Any, Any], _T]) -> _T:
        # A thread without a lease (at the cap, see _lease): pymongo's own checkout, as
        # MongoClient._checkout (mongo_client.py:1583) makes it for an operation without a
        # session or auto-encryption: its pool and authentication, its error handler (SDAM's
        # rules on the way out with an exception, the connection still checked out:
        # pool.py:1352), its check-in; and a server session from the pool for this one alone.
        client = self._client
        with (
            _MongoClientErrorHandler(client, server, None) as handler,
            server.checkout(handler=handler) as conn,
        ):
            handler.contribute_socket(conn)
            if conn.compression_context is not None or not conn.op_msg_enabled:
                raise _NotServedError
            topology = client._topology
            session = None
            if conn.supports_sessions:
                session = topology.get_server_session(conn.logical_session_timeout_minutes)
            try:
                return operation(conn, server, session)
            finally:
                if session is not None:
                    topology.return_server_session(session)

    def claim(self, lease: _Lease) -> bool:
        """Take `lease` out of the idle set: True when this caller now owns it."""
        try:
            self._idle.remove(lease)
        except KeyError:
            return False
        return True

    def _lease(self, server: Any) -> _Lease | None:
        """This thread's lease on `server`, checked as the pool checks a connection it lends;
        a new one when it has none or that one failed a check; None at the cap."""
        local = self._local
        holder: _Holder | None = getattr(local, "holder", None)
        if holder is None:
            holder = local.holder = _Holder(self)
        lease = holder.lease
        if lease is not None:
            if self.claim(lease) and self._usable(lease, server):
                return lease
            holder.lease = None  # handed back by _usable, or by close() (give_all_back)
        lease = holder.lease = self._new_lease(server)
        return lease

    def _usable(self, lease: _Lease, server: Any) -> bool:
        """Whether the connection may serve this read, as `Pool._get_conn` and `_perished`
        decide for a pooled one (pool.py:1407, 1605), and the server is still the one selected;
        if not, the lease is handed back, the connection closed where the pool would close it."""
        pool = lease.pool
        conn = lease.conn
        if (
            # Another server selected (a new primary, another mongos), or the same address in a
            # new topology: pymongo gives a forked child's client one (mongo_client.py:926
            # `_after_fork`), so a child never reads on its parent's socket.
            lease.server is not server
            # The pool cleared (SDAM: the server marked Unknown; pool.py:1074 `_reset` bumps the
            # generation, pausing it until the monitor reaches the server again) or closed
            # (client.close(): `_reset(close=True)` bumps it too).
            or pool.stale_generation(conn.generation, conn.service_id)
        ):
            # The check-in closes it when the pool would not lend it again (pool.py:1533:
            # closed pool, closed connection, stale generation) and pools it otherwise.
            self.give_back(lease)
            return False
        idle = time.monotonic() - conn.last_checkin_time
        max_idle = pool.opts.max_idle_time_seconds
        interval = pool._check_interval_seconds
        if (max_idle is not None and idle > max_idle) or (
            interval is not None and (interval == 0 or idle > interval) and conn.conn_closed()
        ):
            # maxIdleTimeMS, or a socket the server closed while it sat (pymongo looks when
            # it sat over a second). Closed without an event, the check-in then publishes the
            # connection's one ConnectionClosedEvent, as after a failed operation (pool.py
            # 1556; its reason is "error" where the pool's own idle close says "idle").
            conn.close_conn(None)
            self.give_back(lease)
            return False
        session = lease.session
        if session is not None and session.timed_out(conn.logical_session_timeout_minutes):
            topology = self._client._topology
            topology.return_server_session(session)  # the pool drops it on its next take
            lease.session = topology.get_server_session(conn.logical_session_timeout_minutes)
        return True

    def _new_lease(self, server: Any) -> _Lease | None:
        self._hand_back_ended(server.pool)
        # At most half of maxPoolSize held: the other half stays for pymongo's own operations,
        # including those of the threads that hold one (PATCH reads, then writes through
        # pymongo on a second connection), so no thread waits on a connection that a thread
        # waiting in turn holds, and maxPoolSize=1 holds none (every read checks out).
        with self._lock:
            if self._leased >= server.pool.max_pool_size // 2:
                return None
            self._leased += 1
        client = self._client
        handler = _MongoClientErrorHandler(client, server, None)
        checkout = server.checkout(handler=handler)
        try:
            conn = checkout.__enter__()
        except BaseException as error:
            with self._lock:
                self._leased -= 1
            handler.handle(type(error), error)  # as MongoClient._checkout's `with` would
            raise
        handler.contribute_socket(conn)
        if (
            conn.compression_context is not None
            or not conn.op_msg_enabled
            or not isinstance(conn.conn, socket.socket)
        ):
            self.give_back(_Lease(server, checkout, conn, None))
            raise _NotServedError
        session = None
        if conn.supports_sessions:
            # The Sessions specification (source/sessions/driver-sessions.md) pools server
            # sessions so that sequential operations reuse them ("Server Session Pool": the
            # pool is LIFO, the most recently used taken first), and forbids reusing one that
            # is about to expire or saw a network error; a thread's reads are sequential, so it
            # keeps the one it took, checked for expiry per read (_usable) and handed back
            # with the connection, dirty after a network error (_find).
            session = client._topology.get_server_session(conn.logical_session_timeout_minutes)
        return _Lease(server, checkout, conn, session)

    def give_back(self, lease: _Lease, error: BaseException | None = None) -> None:
        """Leave the lease's checkout context: with `error`, pymongo's handler runs SDAM's rules
        on it first (pool.py:1352); the check-in closes the connection or pools it."""
        with self._lock:
            self._leased -= 1
        self._check_in(lease, error)

    def _check_in(self, lease: _Lease, error: BaseException | None = None) -> None:
        _leases_of(lease.pool).held.discard(lease)
        try:
            if error is None:
                lease.checkout.__exit__(None, None, None)
            else:
                lease.checkout.__exit__(type(error), error, error.__traceback__)
        finally:
            if lease.session is not None:
                self._client._topology.return_server_session(lease.session)

    def _hand_back_ended(self, pool: Any) -> None:
        """Hand back the leases of `pool` whose holders ended on another thread (counted by a
        reader that is gone: not by this one)."""
        ended = _leases_of(pool).ended
        while ended:
            try:
                lease = ended.popleft()
            except IndexError:  # another thread took the last one
                break
            self._check_in(lease)

    def give_all_back(self) -> None:
        """Hand back every lease no read is using (client.close(), configure())."""
        idle = self._idle
        while True:
            try:
                lease = idle.pop()
            except KeyError:
                break
            self.give_back(lease)
        # Those of a reader of this client that is gone (configure() replaced it), on each of
        # the client's pools: topology.py:584 `get_server_by_address`, the Server as it is.
        topology = self._client._topology
        for address in topology.description.server_descriptions():
            server = topology.get_server_by_address(address)
            if server is not None:
                self._hand_back_ended(server.pool)


def _find(
    client: MongoClient[Any],
    conn: Any,
    server: Any,
    collection: Collection[Document],
    filter: Document,
    projection: Document | None,
    session: Any,
) -> Document | None:
    command: Document = {"find": collection.name, "filter": filter}
    if projection is not None:
        command["projection"] = projection
    command["limit"] = 1
    command["singleBatch"] = True
    remaining, command["maxTimeMS"] = time_left(conn, server)
    command["$db"] = collection.database.name
    if session is not None:
        # The Sessions specification (source/sessions/driver-sessions.md, "Sending the session
        # ID to the server on all commands"): a driver MUST append the session id to every
        # command but the listed exceptions, of which a find is none.
        session.last_use = time.monotonic()
        command["lsid"] = session.session_id
    # "Gossipping the cluster time" (same specification): the highest $clusterTime seen goes
    # with every command to a deployment that reports one (none for a standalone).
    client._send_cluster_time(command, None)
    try:
        reply = _round_trip(conn, command, collection, remaining)
    except ConnectionFailure:
        if session is not None:
            session.mark_dirty()  # as pymongo's _tmp_session: never reused after a network error
        raise
    topology = client._topology
    if "$clusterTime" in reply:
        topology.receive_cluster_time(reply["$clusterTime"])
    # pymongo's own classification of an `ok: 0` (NotPrimaryError, ExecutionTimeout,
    # OperationFailure ...), raised inside the checkout so that SDAM sees it as it would.
    _check_command_response(reply, conn.max_wire_version)
    cursor = reply["cursor"]
    if cursor["id"] != 0:
        # singleBatch closes the cursor on the server ("singleBatch: determines whether to close
        # the cursor after the first batch"): a server that kept one open is not understood.
        conn.close_conn(ConnectionClosedReason.ERROR)
        raise ProtocolError("find with singleBatch answered with an open cursor")
    batch = cursor["firstBatch"]
    return batch[0] if batch else None


def time_left(conn: Any, server: Any) -> tuple[float, int]:
    """The seconds left of the CSOT deadline and the command's maxTimeMS, as
    Connection.apply_timeout (pool.py:323) decides them: maxTimeMS is what remains less the
    server's round trip time (none left: ExecutionTimeout, nothing sent), the socket waits at
    most what remains."""
    remaining = _csot.get_deadline() - time.monotonic()
    max_time = remaining - server.description.min_round_trip_time
    if max_time < 0:
        raise ExecutionTimeout(
            "operation would exceed time limit", 50, {"ok": 0, "code": 50}, conn.max_wire_version
        )
    return remaining, int(max_time * 1000)


def _round_trip(
    conn: Any, command: Document, collection: Collection[Document], remaining: float
) -> Document:
    """The reply to `command` sent as one OP_MSG on `conn`, decoded with the collection's codec
    options (`send`, then `reply`)."""
    options = collection.codec_options
    request_id = send(conn, bson.encode(command, codec_options=options), b"", remaining)
    return reply(conn, request_id, options)


def send(conn: Any, body: bytes, sequences: bytes, remaining: float) -> int:
    """Send one OP_MSG on `conn`: the command's `body` (section kind 0), then `sequences`
    (encoded kind 1 sections, or nothing); its request id. A socket failure closes the
    connection and raises pymongo's ConnectionFailure (Connection._raise_connection_failure):
    the message did not all reach the kernel, so the server cannot have run it."""
    request_id = next(_request_ids) & 0x7FFFFFFF
    length = _REPLY_PREFIX + len(body) + len(sequences)
    message = _PREFIX.pack(length, request_id, 0, OP_MSG, 0, 0) + body + sequences
    sock = conn.conn
    if not isinstance(sock, socket.socket):  # pyOpenSSL's connection: pymongo's read does it
        raise _NotServedError
    try:
        conn.set_conn_timeout(remaining)
        sock.sendall(message)
    except BaseException as error:
        conn._raise_connection_failure(error)
    return request_id


def reply(conn: Any, request_id: int, options: Any) -> Document:
    """The reply to the OP_MSG `request_id` sent on `conn`, decoded with `options`; a socket
    failure closes the connection and raises pymongo's ConnectionFailure, a reply not understood
    closes it and raises ProtocolError (so a half-read reply is never taken for the next
    command's)."""
    sock = conn.conn
    try:
        data = _receive(conn, sock, b"")
        while len(data) < _HEADER.size:
            data = _receive(conn, sock, data)
        length, _, response_to, opcode = _HEADER.unpack_from(data)
        if response_to != request_id or opcode != OP_MSG:
            raise ProtocolError(f"reply {response_to} op {opcode} to OP_MSG {request_id}")
        if not _REPLY_PREFIX + 5 <= length <= conn.max_message_size:
            raise ProtocolError(f"reply length {length} out of range")
        while len(data) < length:
            data = _receive(conn, sock, data)
    except ProtocolError:
        conn.close_conn(ConnectionClosedReason.ERROR)
        raise
    except BaseException as error:
        conn._raise_connection_failure(error)
    try:
        if len(data) != length or data[16:_REPLY_PREFIX] != b"\x00\x00\x00\x00\x00":
            # More than one reply, or flag bits (checksum, moreToCome) or a section kind that a
            # reply to this request does not carry.
            raise ProtocolError("unexpected OP_MSG reply framing")
        return bson.decode(data[_REPLY_PREFIX:], codec_options=options)
    except Exception:
        conn.close_conn(ConnectionClosedReason.ERROR)
        raise


def _receive(conn: Any, sock: socket.socket, data: bytes) -> bytes:
    # The first wait uses the timeout set before sending; a reply in several segments waits at
    # most what remains of the same deadline (as pymongo's _receive_data_on_socket does).
    if data:
        conn.set_conn_timeout(max(_csot.get_deadline() - time.monotonic(), 0.0) or 1e-6)
    chunk = sock.recv(_RECEIVE)
    if not chunk:
        raise OSError("connection closed")
    return data + chunk if data else chunk
