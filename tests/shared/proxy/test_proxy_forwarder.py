"""The proxy against real backends on 127.0.0.1: passthrough, safety, retries, limits, errors."""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable

import pytest

from lucid.errors import (
    BadGatewayError,
    GatewayTimeoutError,
    ServiceUnavailableError,
    UnsafePathError,
)
from lucid.identity import CallerIdentity, Role
from lucid.proxy import Proxy, backoff_delays
from lucid.proxy.forwarder import exchange_seconds
from lucid_edge.local import free_port
from tests.shared.proxy.conftest import proxy_request, proxy_settings
from tests.shared.proxy.proxy_backends import (
    BackendServer,
    raw_backend,
    read_request_head,
    running_backend,
    unaccepting_listener,
)
from tests.shared.proxy.test_proxy_routing import TRAVERSALS

MakeProxy = Callable[..., Proxy]
CALLER = CallerIdentity(user_id="u-7", address="TAbc", role=Role.ADMIN, tier="admin", jti="j")


def test_method_path_query_body_and_identity_pass_through(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(proxy_settings(NODE_SERVICE_URL=backend.url + "/api"))
    answer = proxy.forward(
        proxy_request(
            "PATCH",
            "nodes",
            "n-1/config",
            query=b"dry_run=1&tag=a%20b",
            headers=[("Content-Type", "application/json"), ("X-Lucid-Role", "admin")],
            body=b'{"replicas":3}',
            caller=CALLER,
        )
    )
    assert answer.status == 200
    [seen] = backend.received
    assert (seen.method, seen.path) == ("PATCH", "/api/nodes/n-1/config?dry_run=1&tag=a%20b")
    assert seen.body == b'{"replicas":3}'
    assert seen.header("X-Lucid-User-Id") == ["u-7"]
    assert seen.header("X-Lucid-Role") == ["admin"]
    assert seen.header("X-Forwarded-For") == ["203.0.113.9"]
    assert seen.header("X-Request-ID") == ["req-123"]
    assert seen.header("Content-Type") == ["application/json"]
    assert seen.header("User-Agent") == []  # the client library adds nothing of its own


def test_the_backend_sees_the_host_framing_and_url_credentials_httpx_used_to_send(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN a backend URL with user information and a port of its own
    base = backend.url.replace("http://", "http://svc%40lucid:p%3Ass@") + "/api"
    proxy = make_proxy(proxy_settings(NODE_SERVICE_URL=base))
    # WHEN a POST without a body, a GET and a PUT with one are forwarded
    for method, body in (("POST", b""), ("GET", b""), ("PUT", b"abc")):
        assert proxy.forward(proxy_request(method, "nodes", "n-1", body=body)).status == 200
    # THEN each names the backend's host and port, and only a body or a body method is framed
    # (httpx's rules: Content-Length: 0 for an empty POST, PUT or PATCH, none for a GET)
    post, get, put = backend.received
    for seen in (post, get, put):
        assert seen.header("Host") == [f"127.0.0.1:{backend.port}"]
        assert seen.header("Transfer-Encoding") == []
        # ...with the URL's user information as Basic credentials, decoded first
        assert seen.header("Authorization") == ["Basic c3ZjQGx1Y2lkOnA6c3M="]  # svc@lucid:p:ss
    assert post.header("Content-Length") == ["0"]
    assert get.header("Content-Length") == []
    assert (put.header("Content-Length"), put.body) == (["3"], b"abc")


@pytest.mark.parametrize("remainder", TRAVERSALS)
def test_unsafe_paths_are_refused_before_any_connection(
    backend: BackendServer, make_proxy: MakeProxy, remainder: str
) -> None:
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    with pytest.raises(UnsafePathError):
        proxy.forward(proxy_request("GET", "chain", remainder))
    assert backend.received == []
    assert backend.connections == 0


def test_post_is_sent_once_when_the_backend_resets_after_reading_it(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN a backend that reads the request, then resets the connection
    backend.mode = "reset"
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, PROXY_RETRIES=3))
    # WHEN a POST and a GET go through
    with pytest.raises(BadGatewayError):
        proxy.forward(proxy_request("POST", "chain", "tx", body=b"{}"))
    with pytest.raises(BadGatewayError):
        proxy.forward(proxy_request("GET", "chain", "tx/1"))
    # THEN each reached the backend exactly once: a request that may have arrived is not resent
    assert [r.method for r in backend.received] == ["POST", "GET"]


def test_retries_stop_where_the_next_wait_would_outlast_the_invocation(
    make_proxy: MakeProxy,
) -> None:
    # GIVEN a port where nothing listens, five retries allowed, waits at the bottom of their
    # jitter (0.025, 0.05, 0.1, 0.2, 0.4 s), and 0.525 s left to the invocation: 0.275 s of it
    # for the backend (0.25 s is kept to answer). After three waits (0.175 s) the fourth would
    # end at 0.375 s: each decision is 0.1 s from the line, so a busy machine's late wake-ups
    # cannot turn the refusal into a timeout.
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    settings = proxy_settings(
        BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{free_port()}", PROXY_RETRIES=5
    )
    proxy = make_proxy(settings, sleep=sleep, rng=_LowestJitter())
    # WHEN a GET is proxied THEN it is the 502 once no further wait fits the time left
    with pytest.raises(BadGatewayError, match="refused the connection"):
        proxy.forward(proxy_request("GET", time_left=0.525))
    assert waits == pytest.approx([0.025, 0.05, 0.1], abs=1e-9)


class _LowestJitter(random.Random):
    """Every backoff wait at the bottom of its jitter (half its ceiling)."""

    def uniform(self, a: float, b: float) -> float:
        return a


def test_get_is_retried_on_connection_refused_until_the_backend_listens(
    make_proxy: MakeProxy,
) -> None:
    # GIVEN a port where nothing listens yet; the backend starts during the first backoff
    port = free_port()
    started: list[BackendServer] = []
    waits: list[float] = []
    context = running_backend(port)

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if not started:
            started.append(context.__enter__())

    proxy = make_proxy(
        proxy_settings(BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{port}"), sleep=sleep
    )
    try:
        # WHEN a GET is proxied
        answer = proxy.forward(proxy_request("GET", "chain", "blocks/1"))
        # THEN it succeeded on the second attempt, after one jittered wait
        assert answer.status == 200
        assert len(waits) == 1
        assert 0.025 <= waits[0] <= 0.05
        assert [r.path for r in started[0].received] == ["/chain/blocks/1"]
    finally:
        context.__exit__(None, None, None)


def test_post_to_a_refused_port_is_not_retried(make_proxy: MakeProxy) -> None:
    waits: list[float] = []
    proxy = make_proxy(
        proxy_settings(BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{free_port()}"),
        sleep=waits.append,
    )
    with pytest.raises(BadGatewayError) as raised:
        proxy.forward(proxy_request("POST", "chain", "tx", body=b"{}"))
    assert waits == []
    assert "refused" in raised.value.detail


def test_refused_get_gives_up_after_the_configured_retries(make_proxy: MakeProxy) -> None:
    waits: list[float] = []
    proxy = make_proxy(
        proxy_settings(BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{free_port()}", PROXY_RETRIES=3),
        sleep=waits.append,
        rng=random.Random(7),
    )
    with pytest.raises(BadGatewayError):
        proxy.forward(proxy_request("GET"))
    assert len(waits) == 3


def test_backoff_is_exponential_capped_and_jittered() -> None:
    first = list(backoff_delays(6, random.Random(1)))
    second = list(backoff_delays(6, random.Random(2)))
    ceilings = [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    for delays in (first, second):
        assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert first != second


def test_body_over_6_mb_is_502_whether_declared_or_streamed(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    for mode in ("huge", "huge_chunked"):
        backend.mode = mode
        with pytest.raises(BadGatewayError) as raised:
            proxy.forward(proxy_request())
        assert "bytes" in raised.value.detail
    # the backend answered: too large is not a breaker failure
    assert proxy.breakers["blockchain"].state == "closed"


def test_a_chunked_answer_is_cut_at_6_mb_not_read_to_its_end(make_proxy: MakeProxy) -> None:
    # GIVEN a backend streaming a chunked answer of 64 MiB (no length declared up front)
    sent: list[int] = []

    def answer(connection: socket.socket) -> None:
        read_request_head(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        for _ in range(1024):
            connection.sendall(chunk)
            sent.append(0x10000)
        connection.sendall(b"0\r\n\r\n")

    with raw_backend(answer) as url:
        proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=url))
        # WHEN it is forwarded THEN it is the 502 once 6 MiB have come, and the rest is never read
        with pytest.raises(BadGatewayError, match="larger than a Lambda response"):
            proxy.forward(proxy_request())
    assert sum(sent) < 16 * 1024 * 1024


def test_slow_backend_is_504(backend: BackendServer, make_proxy: MakeProxy) -> None:
    backend.mode, backend.delay = "slow", 1.0
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    started = time.monotonic()
    with pytest.raises(GatewayTimeoutError):
        proxy.forward(proxy_request("GET"))
    assert time.monotonic() - started < 0.9
    assert len(backend.received) == 1  # a read timeout is not retried


def test_the_invocation_deadline_caps_the_read_timeout(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN a read timeout longer than what is left of the Lambda invocation
    backend.mode, backend.delay = "slow", 1.5
    proxy = make_proxy(
        proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, PROXY_READ_TIMEOUT_SECONDS=5)
    )
    started = time.monotonic()
    with pytest.raises(GatewayTimeoutError):
        proxy.forward(proxy_request("GET", time_left=0.6))
    assert time.monotonic() - started < 0.6
    # and with no time left at all the backend is not called, nor blamed: invocations out of
    # time (BREAKER_MIN_CALLS of them) do not open a healthy backend's breaker
    for _ in range(4):
        with pytest.raises(GatewayTimeoutError, match="no time left in this invocation"):
            proxy.forward(proxy_request("GET", time_left=0.1))
    assert len(backend.received) == 1
    backend.mode = "ok"
    assert proxy.forward(proxy_request("GET")).status == 200


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (404, "application/problem+json", b'{"title":"no such block"}'),
        (409, "text/plain; charset=utf-8", b"conflict"),
        (500, "application/vnd.chain.error+json", b'{"error":"boom"}'),
        (503, "text/html", b"<h1>down</h1>"),
    ],
)
def test_backend_errors_pass_through_with_body_and_content_type(
    backend: BackendServer, make_proxy: MakeProxy, status: int, content_type: str, body: bytes
) -> None:
    backend.mode, backend.status, backend.content_type, backend.body = (
        "status",
        status,
        content_type,
        body,
    )
    proxy = make_proxy(proxy_settings(SESSION_SERVICE_URL=backend.url))
    answer = proxy.forward(proxy_request("GET", "manifests", "m-1"))
    assert (answer.status, answer.body) == (status, body)
    assert dict(answer.headers)["content-type"] == content_type


def test_head_keeps_the_backend_length(backend: BackendServer, make_proxy: MakeProxy) -> None:
    proxy = make_proxy(proxy_settings(NODE_SERVICE_URL=backend.url))
    answer = proxy.forward(proxy_request("HEAD", "nodes", "n-1"))
    assert answer.body == b""
    expected = len(json.dumps({"method": "HEAD", "path": "/nodes/n-1"}))
    assert dict(answer.headers)["content-length"] == str(expected)


def test_unconfigured_backend_is_503_naming_the_setting(make_proxy: MakeProxy) -> None:
    proxy = make_proxy(proxy_settings(SESSION_SERVICE_URL=None))
    with pytest.raises(ServiceUnavailableError) as raised:
        proxy.forward(proxy_request("GET", "trust", "t-1"))
    assert "SESSION_SERVICE_URL" in raised.value.detail


def test_one_pooled_connection_serves_consecutive_calls(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    for _ in range(5):
        assert proxy.forward(proxy_request()).status == 200
    assert backend.connections == 1


@pytest.mark.parametrize(
    ("mode", "read_timeout", "error"),
    # A cut-off body is a close the proxy waits for, never a timeout: its read timeout is long,
    # so that a loaded machine's handler thread closing late is not a 504 (it was at 0.3 s).
    # A stalled body is a timeout the proxy waits for: the backend's close comes long after it
    # (5 s, which nobody waits for), so that a proxy thread woken late does not see it first.
    [("stall", 0.3, GatewayTimeoutError), ("truncate", 10.0, BadGatewayError)],
)
def test_a_body_that_stalls_or_is_cut_off_is_504_or_502(
    backend: BackendServer,
    make_proxy: MakeProxy,
    mode: str,
    read_timeout: float,
    error: type[Exception],
) -> None:
    backend.mode, backend.delay = mode, 5.0
    proxy = make_proxy(
        proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, PROXY_READ_TIMEOUT_SECONDS=read_timeout)
    )
    with pytest.raises(error):
        proxy.forward(proxy_request())


def test_a_trickling_body_is_cut_at_the_invocation_deadline(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    backend.mode = "drip"  # one byte every 50 ms: never a read timeout
    proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url))
    started = time.monotonic()
    with pytest.raises(GatewayTimeoutError):
        proxy.forward(proxy_request(time_left=0.6))
    assert time.monotonic() - started < 0.6


def test_a_trickling_body_is_cut_at_the_longest_exchange_without_a_deadline(
    backend: BackendServer, make_proxy: MakeProxy
) -> None:
    # GIVEN a body trickling in for a second, under every read timeout, and no invocation
    # deadline; the exchange may last 0.1 + 0.3 s (one connect, one read: no retries)
    backend.mode = "drip"
    settings = proxy_settings(
        BLOCKCHAIN_SERVICE_URL=backend.url, PROXY_RETRIES=0, PROXY_CONNECT_TIMEOUT_SECONDS=0.1
    )
    assert exchange_seconds(settings) == pytest.approx(0.4)
    # (with retries: six connects, the five longest waits 0.05 + 0.1 + 0.2 + 0.4 + 0.8, a read)
    retrying = proxy_settings(
        PROXY_RETRIES=5, PROXY_CONNECT_TIMEOUT_SECONDS=0.1, PROXY_READ_TIMEOUT_SECONDS=2
    )
    assert exchange_seconds(retrying) == pytest.approx(6 * 0.1 + 1.55 + 2)
    proxy = make_proxy(settings)
    # WHEN it is forwarded THEN it is cut there: 504, not a wait for the whole body
    started = time.monotonic()
    with pytest.raises(GatewayTimeoutError):
        proxy.forward(proxy_request())
    assert time.monotonic() - started < 0.9


def test_connect_timeout_is_retried_for_get_then_504(make_proxy: MakeProxy) -> None:
    # GIVEN a listener whose accept queue is full: new connections are never accepted
    waits: list[float] = []
    with unaccepting_listener() as port:
        proxy = make_proxy(
            proxy_settings(
                BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{port}",
                PROXY_CONNECT_TIMEOUT_SECONDS=0.1,
            ),
            sleep=waits.append,
        )
        with pytest.raises(GatewayTimeoutError) as raised:
            proxy.forward(proxy_request("GET"))
    assert "connection" in raised.value.detail
    assert len(waits) == 2


def _trickled_answer(connection: socket.socket) -> None:
    read_request_head(connection)
    # status line and headers one byte per 50 ms: each read well inside the read timeout
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: " + b"p" * 60 + b"\r\n\r\nok":
        connection.sendall(bytes([byte]))
        time.sleep(0.05)


@pytest.mark.parametrize(("time_left", "bound"), [(0.8, 0.8), (None, 0.9)])
def test_a_status_line_and_headers_trickling_in_are_cut_at_the_deadline(
    make_proxy: MakeProxy, time_left: float | None, bound: float
) -> None:
    # GIVEN a backend whose headers take 4 s to arrive, and an exchange that may last 0.4 s
    # (one connect of 0.1 s, one read of 0.3 s) or what the invocation has left (0.8 s)
    with raw_backend(_trickled_answer) as url:
        settings = proxy_settings(
            BLOCKCHAIN_SERVICE_URL=url, PROXY_RETRIES=0, PROXY_CONNECT_TIMEOUT_SECONDS=0.1
        )
        proxy = make_proxy(settings)
        # WHEN it is forwarded THEN it is a 504 by that deadline, not when the headers end
        started = time.monotonic()
        with pytest.raises(GatewayTimeoutError):
            proxy.forward(proxy_request(time_left=time_left))
        assert time.monotonic() - started < bound
    # AND the breaker counted it as the backend's failure
    calls, failures = proxy.breakers["blockchain"]._window.counts()
    assert (calls, failures) == (1, 1)


# A whole response hidden after the end of another: what the next request on that connection
# would read as its answer if the connection were used again.
_SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\nX-Smuggled: 1\r\n\r\nanother caller's data"


@pytest.mark.parametrize(
    "first",
    [
        # a 204 or 304 has no body whatever it declares (RFC 9110 sections 15.3.5, 15.4.5)
        b"HTTP/1.1 204 No Content\r\nContent-Length: %d\r\n\r\n" % len(_SMUGGLED),
        b'HTTP/1.1 304 Not Modified\r\nETag: "1"\r\n\r\n',
        # more bytes than the Content-Length it declared
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        # the same with bare LF line ends, which the client library accepts too
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        # more after the last chunk (a chunked answer's connection is never used again)
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ],
)
def test_bytes_after_the_end_of_an_answer_never_become_the_next_callers_answer(
    make_proxy: MakeProxy, first: bytes
) -> None:
    # GIVEN a backend that writes more after the end of its first answer, in the same packet,
    # then answers every later request with the real answer
    served: list[bytes] = []

    def answer(connection: socket.socket) -> None:
        while request := read_request_head(connection):
            served.append(request)
            real = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nreal answer"
            connection.sendall(first + _SMUGGLED if len(served) == 1 else real)

    with raw_backend(answer) as url:
        proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=url))
        # WHEN one caller's request gets that answer, and another request follows
        proxy.forward(proxy_request(remainder="first"))
        second = proxy.forward(proxy_request(remainder="second"))
    # THEN the second gets its own answer from the backend, never the bytes left over
    assert (second.status, second.body) == (200, b"real answer")
    assert ("x-smuggled", "1") not in second.headers
    assert len(served) == 2


def test_a_cleanly_framed_answer_keeps_its_connection_for_the_next_request(
    make_proxy: MakeProxy,
) -> None:
    # GIVEN a backend answering within each framing, an interim 103 before one answer
    connections: list[int] = []

    def answer(connection: socket.socket) -> None:
        connections.append(1)
        answers = [
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + b"b" * 70000,
        ]
        for reply in answers:
            if not read_request_head(connection):
                return
            connection.sendall(reply)
        read_request_head(connection)

    with raw_backend(answer) as url:
        proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=url))
        statuses = [proxy.forward(proxy_request()).status for _ in range(4)]
    # THEN one connection served them all
    assert statuses == [204, 200, 200, 200]
    assert len(connections) == 1
