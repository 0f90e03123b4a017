"""rediss:// (ElastiCache with encryption in transit): the TLS handshake is bounded by
REDIS_CONNECT_TIMEOUT_MS, not by the per-command REDIS_TIMEOUT_MS.

In front of the session's real redis-server runs a real TLS terminator on 127.0.0.1 (a
self-signed certificate the client trusts) that holds each handshake for a set time, as a busy
server does when many functions connect at once; then it relays the bytes both ways.
"""

from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lucid.config import Settings
from lucid.store.redis_client import build_redis
from lucid_edge.local import EmbeddedRedis

KEY = "k" * 32


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


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
    cert_file, key_file = _certificate(folder)
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
) -> Iterator[redis.Redis]:
    """A client of the gateway's own build for the TLS front at `port`, its pool's sockets
    closed on the way out: `Redis.close()` leaves a pool it was given open (redis 8.1,
    `auto_close_connection_pool`), and an SSL socket left to the garbage collector is an
    unclosed-socket ResourceWarning that `-W error` turns into a failed run at the session's end.
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
        client.connection_pool.disconnect()


def test_a_handshake_slower_than_the_command_bound_connects_within_the_connect_bound(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # GIVEN a TLS Redis whose handshake takes 200 ms, a 50 ms command bound and 2 s to connect
    with (
        slow_tls_front(redis_server.port, 0.2, tmp_path) as (port, ca),
        _tls_client(port, ca, timeout_ms=50, connect_timeout_ms=2000) as client,
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
        with pytest.raises(redis.RedisError):
            client.ping()
        assert time.monotonic() - started < 0.9
