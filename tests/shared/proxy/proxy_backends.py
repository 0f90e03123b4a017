"""Real backend HTTP servers on 127.0.0.1 for the proxy tests, each logging what it received.

One server class whose behaviour the test switches at any time (`server.mode = ...`):
ok (JSON echo), fail (500), status (any status, body, content type), slow (answers after
`delay`), hold (answers once the test sets `release`), flap (500 and 200 in turn), huge (a
declared body over 6 MB), huge_chunked (chunked, no length, over 6 MB), stall / drip / truncate
(a body that stops, trickles in or is cut off after its headers), reset (reads the request,
then resets the connection). `raw_backend` answers on raw sockets what no HTTP library would.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIX_MB = 6 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    """One request as the backend saw it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive)."""
        return [v for k, v in self.headers if k.lower() == name.lower()]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: BackendServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.record(Received(self.command, self.path, list(self.headers.items()), body))
        mode = self.server.mode
        if mode == "flap":  # fails every other request: 500, 200, 500, ...
            mode = "fail" if len(self.server.received) % 2 else "ok"
        if mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if mode == "slow":
            time.sleep(self.server.delay)
        if mode == "hold":
            self.server.release.wait(30)
        if mode in ("stall", "truncate", "drip"):
            self._send_partial(mode)
            return
        if mode in ("huge", "huge_chunked"):
            self._send_huge(chunked=mode == "huge_chunked")
            return
        if mode in ("fail", "status"):
            status, ctype, payload = self.server.status, self.server.content_type, self.server.body
            if mode == "fail":
                status = 500
        else:
            status, ctype = 200, "application/json"
            payload = json.dumps({"method": self.command, "path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in self.server.extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_partial(self, mode: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            if mode == "stall":
                time.sleep(self.server.delay)
            elif mode == "drip":
                for _ in range(20):
                    time.sleep(0.05)
                    self.wfile.write(b"x")
                    self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _send_huge(self, *, chunked: bool) -> None:
        block = b"x" * 65536
        total = SIX_MB + len(block)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        try:
            for _ in range(total // len(block)):
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                else:
                    self.wfile.write(block)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the proxy stopped reading: as it should

    do_GET = do_POST = do_PUT = do_PATCH = _handle  # noqa: N815 - http.server's names
    do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815


class BackendServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 with a request log and a switchable behaviour."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.scheme = "http"
        if tls is not None:  # https: each connection's handshake is made as it is accepted
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.mode = "ok"
        self.delay = 1.0
        self.release = threading.Event()
        self.status = 200
        self.content_type = "application/json"
        self.body = b"{}"
        self.extra_headers: list[tuple[str, str]] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.connections = 0
        self.accepted = 0  # connections accepted; https: handshakes begun, failed ones too

    @property
    def url(self) -> str:
        """Base URL of this backend."""
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server_address[1])

    def record(self, received: Received) -> None:
        """Append one request to the log."""
        with self._lock:
            self.received.append(received)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up mid-answer is part of several tests

    def get_request(self) -> tuple[Any, Any]:
        # An https listening socket makes the handshake inside accept(), which raises when the
        # client refuses the certificate: count the attempt before it.
        with self._lock:
            self.accepted += 1
        return super().get_request()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self.connections += 1
        super().process_request(request, client_address)


@contextmanager
def running_backend(port: int = 0, tls: ssl.SSLContext | None = None) -> Iterator[BackendServer]:
    """A started backend (https with `tls`), stopped (and its socket closed) on exit."""
    server = BackendServer(port, tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def unaccepting_listener() -> Iterator[int]:
    """The port of a listener whose accept queue is full: Linux drops the SYN of every new
    connection, so each connect times out (a blackholed backend, on 127.0.0.1)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextmanager
def raw_backend(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """The base URL of a backend written on raw sockets, for answers an HTTP library will not
    send: `answer` gets each accepted connection (closed after it returns)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve(connection: socket.socket) -> None:
        with connection:
            try:
                answer(connection)
            except OSError:
                return  # the proxy hung up: part of several tests

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)


def read_request_head(connection: socket.socket) -> bytes:
    """The request line and headers (up to the blank line), or b"" when the client hung up."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data
