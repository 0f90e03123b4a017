"""The HTTP client's transport: httpx's, over connections bounded by `lucid.proxy.deadline`.

Imported when the client is built (the first forwarded request), not at cold start: httpx
imports httpcore only then too (~14 ms).
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx

from lucid.proxy.deadline import bounded


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the active deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read, waiting until the deadline at most."""
        return self._stream.read(max_bytes, bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write, waiting until the deadline at most."""
        self._stream.write(buffer, bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        """Close the connection."""
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - the tests' backends speak plain HTTP
        """The TLS connection, its handshake bounded too."""
        limit = bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, limit))

    def get_extra_info(self, info: str) -> typing.Any:
        """What the underlying connection says."""
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's synchronous sockets, each connection a `DeadlineStream`."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """A TCP connection, its connect bounded by the deadline."""
        limit = bounded(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, limit, local_address, socket_options)
        return DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - backends are reached over TCP
        """A Unix socket connection (unused: backend URLs are http(s))."""
        limit = bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._backend.connect_unix_socket(path, limit, socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore's retries are off
        """Sleep (httpcore's connect retries, which the client does not use)."""
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's HTTP transport over a connection pool that uses `DeadlineBackend`."""

    def __init__(self, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)  # certifi's CAs, built once
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx builds its pool without a way to pass a network backend: the same pool with one
        # (`httpcore.ConnectionPool`'s documented arguments, httpx's defaults otherwise).
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend(),
        )
