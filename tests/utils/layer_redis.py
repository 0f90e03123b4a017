"""The layer's own Redis client (`lucid.store.resp`) for tests that hand one to gateway code.

Tests that look at the server directly (HGETALL, CLIENT LIST, FLUSHDB, ...) keep using redis-py
(the `redis_client` fixture); gateway code takes only the layer's client, as in Lambda.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

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


# The password of `refused_uri`'s URI: never in a log line, an error or a response.
WRONG_PASSWORD = "Wr0ng-s3cret-Pw"


@contextmanager
def refused_uri(admin: redis.Redis, server_uri: str, *rules: str) -> Iterator[str]:
    """A URI of the test Redis naming an ACL user it has (with `rules`, e.g. "-get", after
    "+@all ~*"): with a wrong password when no rule is given, else with the user's own. The user
    is removed after the block."""
    host_port = server_uri.removeprefix("redis://").split("/")[0]
    admin.execute_command(
        "ACL", "SETUSER", "lucid-refused", "on", ">right-Pw", "~*", "+@all", *rules
    )
    try:
        password = "right-Pw" if rules else WRONG_PASSWORD
        yield f"redis://lucid-refused:{password}@{host_port}/0"
    finally:
        admin.acl_deluser("lucid-refused")
