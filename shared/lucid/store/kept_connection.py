"""Redis commands on a connection the calling thread keeps, for the per-request hot path.

The client path checks a connection out of the pool and back in (a lock every instance thread of a
worker contends for) on every command; redis-py's also recorded observability data and re-validated
arguments: about 13 µs of CPU per call on this machine beyond the command itself (HMGET: 21 µs
through redis-py's client, 8 µs on a kept connection). Every signed-in call makes two such commands
(the revocation check's HMGET, the rate limiter's script when its lease is spent), so each thread of
the process keeps one connection of the pool's kind (same URI, timeouts) and speaks to Redis on it
directly; `kept_connections(client)` is shared by every caller on one pool, so a thread holds one
connection whatever it runs.

A kept connection is one of the pool's own, checked out for as long as its thread lives: it
counts against REDIS_MAX_CONNECTIONS like any other. At most half of the pool is kept, so the
client path always has room; a thread that finds no connection to keep borrows one from the pool
per command, as the client would (and keeps one as soon as one is free). When the thread ends,
its holder (in a `threading.local`) is freed and the connection is closed and its place handed
back to the pool. In Lambda a process has one thread and keeps one connection for its life; on
the local edge instance threads come and go (`lucid_edge.instances` retires idle ones), and each
takes its connection with it.

Errors are the client's (`resp.RedisError`), so callers degrade exactly as with the client.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from lucid.store import resp
from lucid.store.resp import Connection, ConnectionPool

# Each pool carries its own kept connections (an attribute of the pool): they live exactly as
# long as the pool, which they hold (a caller may keep only this object, not the client).
_ATTRIBUTE = "_lucid_kept_connections"
_LOCK = threading.Lock()
# What `server_run_id` learnt on a connection: (the socket it asked on, the run_id).
_SERVER = "_lucid_server"
# The line of INFO server naming the process (Lua scripts match it the same way).
RUN_ID = re.compile(r"run_id:([0-9a-f]+)")
_T = TypeVar("_T")


class _Kept:
    """A thread's kept connection; when the holder is freed (its thread ended), the connection
    goes back (`_give_back`). Nothing refers back to it, so it is freed at once, not by GC."""

    __slots__ = ("__weakref__", "connection")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection


class KeptConnections:
    """One connection of a pool per thread, kept across commands (at most half the pool's)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._local = threading.local()
        # Reentrant: a holder freed while its thread is in `_keep` gives back under the same lock.
        self._count_lock = threading.RLock()
        self._kept = 0
        self._limit = pool.max_connections // 2

    def execute(self, *args: Any, again: tuple[Any, ...] | None = None) -> Any:
        """The reply to one command (`"HMGET", key, field, ...`); redis errors propagate.

        A kept connection can have died since its last use (Redis restarted, an idle timeout):
        a connection error is retried once on a fresh dial, with `again` instead of `args` when
        given. Redis may have run the first attempt and only its reply been lost, so the retry
        must be safe to run twice: idempotent reads, or a command whose repetition over-counts
        and never over-admits (the rate limiter's script, sent again without its give-back). A
        timeout is not retried, so a hung Redis costs one REDIS_TIMEOUT_MS.
        """
        if again is None:
            return self._on_a_connection(_execute, args)
        return self._on_a_connection(_execute_or_else, (args, again))

    def execute_for_server(self, command: Callable[[str], tuple[Any, ...]]) -> Any:
        """The reply to `command(run_id)`: one command made for the server process answering it.

        `run_id` is that redis-server process's own (`server_run_id`), so the command can name
        what only that process may vouch for. A connection dialled again while the command ran
        (the retry of `execute`) may reach another process: then the command is made again for
        that one and sent once more, so a reply is never taken for another process's. Only
        idempotent reads may be sent this way.
        """
        return self._on_a_connection(_execute_for_server, command)

    def _on_a_connection(self, run: Callable[[Connection, _T], Any], what: _T) -> Any:
        held: _Kept | None = getattr(self._local, "held", None)
        if held is None:
            held = self._keep()
            if held is None:  # the kept share of the pool is in use: borrow, as the client does
                borrowed = self._pool.get_connection()
                try:
                    return run(borrowed, what)
                finally:
                    self._pool.release(borrowed)
        return run(held.connection, what)

    def _keep(self) -> _Kept | None:
        # A connection of the pool for this thread to keep, or None when none may be kept now.
        with self._count_lock:
            if self._kept >= self._limit:
                return None
            # Never waiting: the caller then borrows one per command, waiting as the client would.
            connection = self._pool.get_connection_now()
            if connection is None:
                return None
            self._kept += 1
        held = _Kept(connection)
        weakref.finalize(held, self._give_back, connection)
        self._local.held = held
        return held

    def _give_back(self, connection: Connection) -> None:
        # Its thread is gone: close the socket now (Redis drops the client) and free its place.
        # Runs where the holder is freed, the ending thread: it must not wait on any lock the
        # pool's own users hold, and the pool's release only puts into its queue.
        connection.disconnect()
        self._pool.release(connection)
        with self._count_lock:
            self._kept -= 1


def kept_connections(client: resp.Redis) -> KeptConnections:
    """The kept connections of `client`'s pool (one set per pool, made on first use)."""
    pool = client.connection_pool
    kept: KeptConnections | None = getattr(pool, _ATTRIBUTE, None)
    if kept is None:
        with _LOCK:
            kept = getattr(pool, _ATTRIBUTE, None)
            if kept is None:
                kept = KeptConnections(pool)
                setattr(pool, _ATTRIBUTE, kept)
    return kept


def _execute(
    connection: Connection, args: tuple[Any, ...], again: tuple[Any, ...] | None = None
) -> Any:
    # Connection errors are retried once on a fresh dial (with `again` when given); any failure
    # but an error reply closes the connection (`Connection.read`), so a half-read reply is
    # never taken for the next command's.
    return resp.call_with_retry(connection, resp.call, args, again)


def _execute_or_else(connection: Connection, commands: tuple[Any, ...]) -> Any:
    # `commands`: (the args, the args of the retry).
    return _execute(connection, *commands)


def server_run_id(connection: Connection) -> str:
    """The `run_id` of the redis-server process `connection` speaks to ("" if it tells none).

    Redis draws a new random run_id each time a server process starts, and a replica has its
    own (INFO server, `run_id`: "Random value identifying the Redis server"; server.c
    `initServerConfig`), so data that a restart restored from an RDB snapshot or an AOF, or that
    a promoted replica serves, is served under another run_id than the one it was written under.
    It is asked once per socket: a new dial (a restart, a failover) asks again; the answer is
    kept with the socket it came on, so it can never be taken for the run_id of a later socket.
    """
    return _server_of(connection)[1]


def _server_of(connection: Connection) -> tuple[object, str]:
    # (the socket asked on, the run_id), asking the server when this socket was not asked yet.
    known: tuple[object, str] | None = getattr(connection, _SERVER, None)
    if known is not None and _asked_on_this_socket(connection, known):
        return known
    try:
        found = RUN_ID.search(_text(_execute(connection, ("INFO", "server"))))
    except resp.ResponseError:
        found = None  # INFO refused (renamed, an ACL): nothing can tell one process from another
    known = (connection.sock, found.group(1) if found else "")
    setattr(connection, _SERVER, known)
    return known


def _asked_on_this_socket(connection: Connection, known: tuple[object, str]) -> bool:
    # A connection holds its socket in `sock` (None while not connected), and each dial makes a
    # new socket object: the one asked on still being there means the same session.
    sock = connection.sock
    return sock is not None and known[0] is sock


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _execute_for_server(connection: Connection, command: Callable[[str], tuple[Any, ...]]) -> Any:
    for _ in range(2):
        known = _server_of(connection)
        reply = _execute(connection, command(known[1]))
        if _asked_on_this_socket(connection, known):
            return reply
    # Dialled again twice in a row: the server is coming and going; callers degrade.
    raise resp.ConnectionError("the Redis connection was dialled again during the command")
