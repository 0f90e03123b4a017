"""The HTTP client: httpcore's connection pool, over connections bounded by
`lucid.proxy.deadline` and never used again after an answer that overran its framing
(`DeadlineStream`).

httpcore does the HTTP (h11 parses it); httpx, which the proxy used before, added a client
around it the proxy does not need (no redirects, cookies, proxies, decoding or auth flows) and
cost ~14 ms of CPU at the proxy function's cold start (`make bench coldstart`).
"""

from __future__ import annotations

import functools
import re
import ssl
import typing
from collections.abc import Callable, Iterable

import certifi
import httpcore

from lucid.proxy.deadline import bounded

# How much of an answer's first bytes are kept to find where its head ends (h11 refuses a head
# over 64 KB; the rest of what is kept is body).
_HEAD_BYTES_KEPT = 128 * 1024
# The end of a head: an empty line, CRLF or bare LF (h11 accepts both).
_HEAD_END = re.compile(rb"\n\r?\n")
_INTERIM = re.compile(rb"HTTP/\d\.\d 1\d\d ")


@functools.cache
def verified_context() -> ssl.SSLContext:
    """TLS verified against certifi's CAs (as httpx's default context did; no environment
    variable changes it), HTTP/1.1 only, built at the process's first TLS handshake and kept.

    Not at cold start: reading certifi's ~140 CAs is ~215 million instructions (valgrind), some
    20-40 ms of CPU on the bench's machine, which a proxy whose backends speak plain HTTP never
    needs, nor a first request answered before any backend is reached (503 for an unset URL or
    an open breaker, 401). Two threads' first handshakes may both build it; either is kept.
    """
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the active deadline, and which is never
    used again after an answer whose bytes did not end where its framing said.

    The HTTP client parses each answer out of what it read, and keeps what it read beyond the
    answer's end for the next request on the connection. A backend that sends a body with a 204
    or 304 (which have none), or more than its Content-Length, therefore makes those bytes the
    next request's answer (shown on e09dd58: another caller got a whole response hidden after a
    204). nginx closes an upstream connection in that case too ("upstream sent more data than
    specified in Content-Length header"). So each answer's bytes are counted here, and
    `settle` compares them with what its framing allows.
    """

    def __init__(
        self, stream: httpcore.NetworkStream, tls_context: Callable[[], ssl.SSLContext]
    ) -> None:
        self._stream = stream
        self._tls_context = tls_context
        self._answering = False  # reads since the last write: one answer's bytes
        self._received = 0
        self._head = bytearray()
        self._spent = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read, waiting until the deadline at most."""
        data = self._stream.read(max_bytes, bounded(timeout, httpcore.ReadTimeout))
        if not self._answering:  # the first read after a request: a new answer
            self._answering, self._received = True, 0
            self._head.clear()
        self._received += len(data)
        if len(self._head) < _HEAD_BYTES_KEPT:
            self._head += data[: _HEAD_BYTES_KEPT - len(self._head)]
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write, waiting until the deadline at most."""
        self._answering = False
        self._stream.write(buffer, bounded(timeout, httpcore.WriteTimeout))

    def settle(self, body_length: int | None) -> None:
        """The answer just read is over, and its framing allowed `body_length` bytes after its
        head (None: a framing this cannot count, chunked): unless exactly that much was read,
        the connection is not used again."""
        head = self._head_length()
        if body_length is None or head is None or self._received != head + body_length:
            self._spent = True

    def _head_length(self) -> int | None:
        start = 0
        while True:  # interim (1xx) heads come first, each with no body
            end = _HEAD_END.search(self._head, start)
            if end is None:  # pragma: no cover - h11 refuses a head it cannot end in 100 KB
                return None
            if not _INTERIM.match(self._head, start):
                return end.end()
            start = end.end()

    def close(self) -> None:
        """Close the connection."""
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """The TLS connection, its handshake bounded too. `ssl_context` is the pool's, which
        trusts no CA (`connection_pool`): the handshake is made with the backend's own."""
        limit = bounded(timeout, httpcore.ConnectTimeout)
        tls = self._stream.start_tls(self._tls_context(), server_hostname, limit)
        return DeadlineStream(tls, self._tls_context)

    def get_extra_info(self, info: str) -> typing.Any:
        """What the underlying connection says; readable once spent, so that the pool, which
        asks before using an idle connection again, closes it (a readable idle connection is
        one the server closed, to httpcore)."""
        if info == "is_readable" and self._spent:
            return True
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's synchronous sockets, each connection a `DeadlineStream` whose TLS handshakes
    use `tls_context()`."""

    def __init__(self, tls_context: Callable[[], ssl.SSLContext] = verified_context) -> None:
        self._backend = httpcore.SyncBackend()
        self._tls_context = tls_context

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
        return DeadlineStream(stream, self._tls_context)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - backends are reached over TCP
        """A Unix socket connection (unused: backend URLs are http(s))."""
        limit = bounded(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_unix_socket(path, limit, socket_options)
        return DeadlineStream(stream, self._tls_context)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore's retries are off
        """Sleep (httpcore's connect retries, which the client does not use)."""
        self._backend.sleep(seconds)


def connection_pool(
    max_connections: int,
    max_keepalive_connections: int,
    tls_context: Callable[[], ssl.SSLContext] = verified_context,
) -> httpcore.ConnectionPool:
    """A pool of HTTP/1.1 connections made through `DeadlineBackend`, TLS verified by
    `tls_context()` (certifi's CAs: `verified_context`)."""
    return httpcore.ConnectionPool(
        # Given no context, httpcore would build a default one for every TLS connection
        # (httpcore 1.0.9 `_sync/connection.py` `_connect`: `default_ssl_context()`, certifi's
        # CAs read again each time). This one costs nothing and trusts no CA, so a handshake
        # made with it could only fail; `DeadlineStream.start_tls` uses `tls_context()` instead.
        ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=5.0,  # httpx's default (`httpx.Limits`)
        network_backend=DeadlineBackend(tls_context),
    )
