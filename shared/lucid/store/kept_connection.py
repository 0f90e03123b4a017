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
import threading
import weakref
from typing import Any, cast

import redis
from redis.connection import Connection, ConnectionInterface, ConnectionPool

# Each pool carries its own kept connections (an attribute of the pool): they live exactly as
# long as the pool, which they hold (a caller may keep only this object, not the client).
_ATTRIBUTE = "_lucid_kept_connections"
_LOCK = threading.Lock()


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

    def execute(self, *args: Any) -> Any:
        """The reply to one command (`"HMGET", key, field, ...`); redis errors propagate.

        A kept connection can have died since its last use (Redis restarted, an idle timeout):
        a connection error is retried once on a fresh dial. A timeout is not retried, so a hung
        Redis costs one REDIS_TIMEOUT_MS. Only idempotent reads, or commands whose repetition
        over-counts and never over-admits (the rate limiter's script), may be sent this way.
        """
        held: _Kept | None = getattr(self._local, "held", None)
        if held is None:
            held = self._keep()
            if held is None:  # the kept share of the pool is in use: borrow, as the client does
                borrowed = self._pool.get_connection()
                try:
                    return _execute(borrowed, args)
                finally:
                    self._pool.release(borrowed)
        return _execute(held.connection, args)

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


def _execute(connection: ConnectionInterface, args: tuple[Any, ...]) -> Any:
    # Connection errors are retried once on a fresh dial; a reply cut short resets the socket.
    try:
        try:
            return _run(connection, args)
        except redis.ConnectionError:
            _reset(connection)
            return _run(connection, args)
    except redis.ResponseError:
        raise  # Redis answered (NOSCRIPT, WRONGTYPE, ...): the connection is in step
    except BaseException:
        _reset(connection)  # a half-read reply must never be taken for the next command's
        raise


def _run(connection: ConnectionInterface, args: tuple[Any, ...]) -> Any:
    connection.send_command(*args)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    return connection.read_response()


def _reset(connection: ConnectionInterface) -> None:
    connection.disconnect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
