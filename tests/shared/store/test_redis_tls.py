"""rediss:// (ElastiCache with encryption in transit): the TLS handshake is bounded by
REDIS_CONNECT_TIMEOUT_MS, not by the per-command REDIS_TIMEOUT_MS.

In front of the session's real redis-server runs a real TLS terminator on 127.0.0.1 (a
self-signed certificate the client trusts) that holds each handshake for a set time, as a busy
server does when many functions connect at once; then it relays the bytes both ways.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lucid.config import Settings
from lucid.store import resp
from lucid.store.redis_client import build_redis
from lucid_edge.local import EmbeddedRedis
from tests.utils.tls import self_signed_certificate

KEY = "k" * 32


def _relay(client: ssl.SSLSocket, upstream: socket.socket) -> None:
    sockets: list[socket.socket] = [client, upstream]
    while True:
        readable, _, _ = select.select(sockets, [], [], 5)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            (upstream if source is client else client).sendall(data)


@contextmanager
def slow_tls_front(
    redis_port: int, handshake_delay: float, folder: Path
) -> Iterator[tuple[int, Path]]:
    """A TLS terminator for redis_port that starts each handshake `handshake_delay` seconds
    after the client's hello: (its port, the certificate to trust)."""
    cert_file, key_file = self_signed_certificate(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(raw: socket.socket) -> None:
        time.sleep(handshake_delay)
        try:
            with (
                context.wrap_socket(raw, server_side=True) as client,
                socket.create_connection(("127.0.0.1", redis_port)) as upstream,
            ):
                _relay(client, upstream)
        except OSError:  # the client gave up on the handshake: nothing to relay
            raw.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], cert_file
    finally:
        stop.set()
        acceptor.join()
        listener.close()


@contextmanager
def _tls_client(
    port: int, ca: Path, timeout_ms: int, connect_timeout_ms: int
) -> Iterator[resp.Redis]:
    """A client of the gateway's own build for the TLS front at `port`, its pool's sockets
    closed on the way out: an SSL socket left to the garbage collector is an unclosed-socket
    ResourceWarning that `-W error` turns into a failed run at the session's end.
    """
    uri = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    client = build_redis(
        Settings(
            JWT_SECRET_KEY=KEY,
            REDIS_URI=uri,
            REDIS_TIMEOUT_MS=timeout_ms,
            REDIS_CONNECT_TIMEOUT_MS=connect_timeout_ms,
        )
    )
    try:
        yield client
    finally:
        client.close()


def test_a_handshake_slower_than_the_command_bound_connects_within_the_connect_bound(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # GIVEN a TLS Redis whose handshake takes 400 ms, a 150 ms command bound (room for a loaded
    # machine's relay) and 2 s to connect
    with (
        slow_tls_front(redis_server.port, 0.4, tmp_path) as (port, ca),
        _tls_client(port, ca, timeout_ms=150, connect_timeout_ms=2000) as client,
    ):
        # WHEN the client is used THEN it connects over TLS and commands answer
        assert client.ping() is True
        assert client.set("tls-probe", "1") is True
        assert client.get("tls-probe") == b"1"


def test_a_handshake_slower_than_the_connect_bound_fails_within_it(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # GIVEN a TLS Redis whose handshake takes 3 s, a 1 s command bound and 200 ms to connect
    with (
        slow_tls_front(redis_server.port, 3.0, tmp_path) as (port, ca),
        _tls_client(port, ca, timeout_ms=1000, connect_timeout_ms=200) as client,
    ):
        # WHEN the client is used THEN it gives up after the connect bound, not the 1 s one
        started = time.monotonic()
        with pytest.raises(resp.TimeoutError):  # what /meta/health names; not retried
            client.ping()
        assert time.monotonic() - started < 0.9


def test_a_server_whose_certificate_the_client_does_not_trust_is_refused(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # GIVEN a TLS Redis, and a client trusting another certificate than the one it presents
    (tmp_path / "other").mkdir()
    other, _ = self_signed_certificate(tmp_path / "other")
    # WHEN the client is used THEN the handshake fails: a connection error, nothing sent
    with (
        slow_tls_front(redis_server.port, 0.0, tmp_path) as (port, _),
        _tls_client(port, other, timeout_ms=1000, connect_timeout_ms=1000) as client,
        pytest.raises(resp.ConnectionError),
    ):
        client.ping()


def test_a_rediss_uri_may_turn_verification_off_as_redis_py_allowed(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # GIVEN a TLS Redis whose certificate nothing trusts, and ssl_cert_reqs=none
    with slow_tls_front(redis_server.port, 0.0, tmp_path) as (port, _):
        client = build_redis(
            Settings(
                JWT_SECRET_KEY=KEY, REDIS_URI=f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"
            )
        )
        try:
            # THEN it connects (the operator's explicit choice)
            assert client.ping() is True
        finally:
            client.close()


@pytest.mark.parametrize(
    ("query", "trusted"), [("", False), ("&ssl_check_hostname=false", True)], ids=["checked", "off"]
)
def test_a_certificate_for_another_host_name_is_refused_unless_told_not_to_check(
    redis_server: EmbeddedRedis, tmp_path: Path, query: str, trusted: bool
) -> None:
    # GIVEN a TLS Redis whose trusted certificate names 127.0.0.1, reached as "localhost"
    with slow_tls_front(redis_server.port, 0.0, tmp_path) as (port, ca):
        client = build_redis(
            Settings(
                JWT_SECRET_KEY=KEY,
                REDIS_URI=f"rediss://localhost:{port}/0?ssl_ca_certs={ca}{query}",
                REDIS_TIMEOUT_MS=1000,
                REDIS_CONNECT_TIMEOUT_MS=1000,
            )
        )
        try:
            # THEN the host name is checked against the certificate, unless the URI says not to
            if trusted:
                assert client.ping() is True
            else:
                with pytest.raises(resp.ConnectionError):
                    client.ping()
        finally:
            client.close()
