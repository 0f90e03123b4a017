"""A second function instance in its own process, driven by the test over a pipe."""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any

from lucid.errors import LucidError
from lucid.proxy import build_proxy
from tests.shared.proxy.conftest import proxy_request, proxy_settings
from tests.utils.layer_redis import layer_redis


def serve(conn: Connection, redis_uri: str, overrides: dict[str, Any]) -> None:
    """Forward one GET /chain/info per "call" received; answer (status, breaker state)."""
    client = layer_redis(redis_uri)
    proxy = build_proxy(proxy_settings(**overrides), client)
    try:
        while conn.recv() == "call":
            try:
                status = proxy.forward(proxy_request()).status
            except LucidError as error:
                status = error.status
            conn.send((status, proxy.breakers["blockchain"].state.value))
    finally:
        proxy.close()
        client.close()
        conn.close()
