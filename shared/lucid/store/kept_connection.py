"""Redis commands on a connection the calling thread keeps, for the per-request hot path.

redis-py's client path checks a connection out of the pool and back in (a lock every instance
thread of a worker contends for), records observability data and re-validates arguments on every
command: about 13 µs of CPU per call on this machine beyond the command itself (HMGET: 21 µs
through the client, 8 µs on a kept connection). Every signed-in call makes two such commands (the
revocation check's HMGET, the rate limiter's script when its lease is spent), so each thread of
the process keeps one connection of the pool's kind (same URI, timeouts, no retries) and speaks
to Redis on it directly; `kept_connections(client)` is shared by every caller on one pool, so a
thread holds one connection whatever it runs.

A kept connection is one of the pool's own, checked out for as long as its thread lives: it
counts against REDIS_MAX_CONNECTIONS like any other. At most half of the pool is kept, so the
client path always has room; a thread that finds no connection to keep borrows one from the pool
per command, as the client would (and keeps one as soon as one is free). When the thread ends,
its holder (in a `threading.local`) is freed and the connection is closed and its place handed
back to the pool. In Lambda a process has one thread and keeps one connection for its life; on
the local edge instance threads come and go (`lucid_edge.instances` retires idle ones), and each
takes its connection with it.

Errors are redis-py's (`redis.RedisError`), so callers degrade exactly as with the client.
"""

from __future__ import annotations

import queue
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from redis.connection import Connection, ConnectionInterface, ConnectionPool

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

    def __init__(self, connection: ConnectionInterface) -> None:
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

    def _on_a_connection(self, run: Callable[[ConnectionInterface, _T], Any], what: _T) -> Any:
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
            connection = _check_out(self._pool)
            if connection is None:
                return None
            self._kept += 1
        held = _Kept(connection)
        weakref.finalize(held, self._give_back, connection)
        self._local.held = held
        return held

    def _give_back(self, connection: ConnectionInterface) -> None:
        # Its thread is gone: close the socket now (Redis drops the client) and free its place.
        # Runs where the holder is freed, the ending thread: it must not wait on any lock the
        # pool's own users hold, and the pool's release only puts into its queue.
        _reset(connection)
        self._pool.release(cast(Connection, connection))
        with self._count_lock:
            self._kept -= 1


def kept_connections(client: redis.Redis) -> KeptConnections:
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


def _check_out(pool: ConnectionPool) -> ConnectionInterface | None:
    """One of the pool's connections, out of it until released, or None when none is free now
    (never waiting: the caller then borrows one per command, waiting as the client would)."""
    if isinstance(pool, redis.BlockingConnectionPool):
        # Its queue holds max_connections places: idle connections, or None for one not made yet.
        try:
            place = pool.pool.get_nowait()
        except queue.Empty:
            return None
        if place is None:
            place = pool.make_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
        return cast(ConnectionInterface, place)
    try:
        return pool.get_connection()  # a plain pool refuses at once when it is full
    except redis.exceptions.MaxConnectionsError:
        return None


def _execute(
    connection: ConnectionInterface, args: tuple[Any, ...], again: tuple[Any, ...] | None = None
) -> Any:
    # Connection errors are retried once on a fresh dial (with `again` when given); a reply cut
    # short resets the socket.
    try:
        try:
            return _run(connection, args)
        except redis.ConnectionError:
            _reset(connection)
            return _run(connection, args if again is None else again)
    except redis.ResponseError:
        raise  # Redis answered (NOSCRIPT, WRONGTYPE, ...): the connection is in step
    except BaseException:
        _reset(connection)  # a half-read reply must never be taken for the next command's
        raise


def _execute_or_else(connection: ConnectionInterface, commands: tuple[Any, ...]) -> Any:
    # `commands`: (the args, the args of the retry).
    return _execute(connection, *commands)


def server_run_id(connection: ConnectionInterface) -> str:
    """The `run_id` of the redis-server process `connection` speaks to ("" if it tells none).

    Redis draws a new random run_id each time a server process starts, and a replica has its
    own (INFO server, `run_id`: "Random value identifying the Redis server"; server.c
    `initServerConfig`), so data that a restart restored from an RDB snapshot or an AOF, or that
    a promoted replica serves, is served under another run_id than the one it was written under.
    It is asked once per socket: a new dial (a restart, a failover) asks again; the answer is
    kept with the socket it came on, so it can never be taken for the run_id of a later socket.
    """
    return _server_of(connection)[1]


def _server_of(connection: ConnectionInterface) -> tuple[object, str]:
    # (the socket asked on, the run_id), asking the server when this socket was not asked yet.
    known: tuple[object, str] | None = getattr(connection, _SERVER, None)
    if known is not None and _asked_on_this_socket(connection, known):
        return known
    try:
        found = RUN_ID.search(_text(_execute(connection, ("INFO", "server"))))
    except redis.ResponseError:
        found = None  # INFO refused (renamed, an ACL): nothing can tell one process from another
    known = (getattr(connection, "_sock", None), found.group(1) if found else "")
    setattr(connection, _SERVER, known)
    return known


def _asked_on_this_socket(connection: ConnectionInterface, known: tuple[object, str]) -> bool:
    # redis-py's connections hold their socket in `_sock` (None while not connected), and each
    # dial makes a new socket object: the one asked on still being there means the same session.
    sock = getattr(connection, "_sock", None)
    return sock is not None and known[0] is sock


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _execute_for_server(
    connection: ConnectionInterface, command: Callable[[str], tuple[Any, ...]]
) -> Any:
    for _ in range(2):
        known = _server_of(connection)
        reply = _execute(connection, command(known[1]))
        if _asked_on_this_socket(connection, known):
            return reply
    # Dialled again twice in a row: the server is coming and going; callers degrade.
    raise redis.ConnectionError("the Redis connection was dialled again during the command")


def _run(connection: ConnectionInterface, args: tuple[Any, ...]) -> Any:
    connection.send_command(*args)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    return connection.read_response()


def _reset(connection: ConnectionInterface) -> None:
    connection.disconnect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
