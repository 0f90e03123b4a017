"""moto's HTTP server on a free local port: AWS (or LocalStack) for code in another process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

from lucid_edge.local import free_port


@contextmanager
def moto_server() -> Iterator[str]:
    """Serve moto on 127.0.0.1 until the block ends; yields its `host:port`."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()
