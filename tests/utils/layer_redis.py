"""The layer's own Redis client (`lucid.store.resp`) for tests that hand one to gateway code.

Tests that look at the server directly (HGETALL, CLIENT LIST, FLUSHDB, ...) keep using redis-py
(the `redis_client` fixture); gateway code takes only the layer's client, as in Lambda.
"""

from __future__ import annotations

from lucid.store import resp


def layer_redis(
    uri: str,
    *,
    timeout: float = 2.0,
    connect_timeout: float = 2.0,
    max_connections: int = 16,
    pool_timeout: float = 2.0,
    connection_class: type[resp.Connection] = resp.Connection,
) -> resp.Redis:
    """A client of the layer's kind for `uri` (bounds generous enough for a busy machine),
    its connections of `connection_class` (a test's own, to inject a fault)."""
    pool = resp.ConnectionPool(
        resp.parse_uri(uri),
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=timeout,
        connect_timeout=connect_timeout,
        connection_class=connection_class,
    )
    return resp.Redis(pool)


def unreachable_redis(port: int, *, connect_timeout: float = 0.05) -> resp.Redis:
    """A client of a port nobody listens on: every command fails at once (refused)."""
    return layer_redis(f"redis://127.0.0.1:{port}/0", connect_timeout=connect_timeout)
