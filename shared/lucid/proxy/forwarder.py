"""Forwarding one request to its backend: safety checks, breaker, retries, bounded streaming.

Error mapping (all problem+json, raised as `lucid.errors`):

    unsafe path or query ............ 400 UnsafePathError     (before any connection)
    backend URL unset ............... 503 naming the setting
    breaker open .................... 503 with Retry-After    (backend not touched)
    connection refused / reset ...... 502 BadGatewayError
    TLS certificate not verified .... 502 BadGatewayError     (saying so)
    connect or read timeout ......... 504 GatewayTimeoutError (also: the invocation's time is up)
    body over 6 MB, or too large for  502 BadGatewayError
    the Lambda result once encoded
    a status outside 100-599 ........ 502 BadGatewayError     (counted as a failure)
    backend 4xx / 5xx ............... passed through with its body and headers

Retries: only GET, HEAD, OPTIONS, PUT and DELETE, only when the connection could not be made
(nothing reached the backend) for a reason a new connection may not meet again (not a TLS
certificate that did not verify), with jittered exponential backoff, and only while the
invocation's time allows. A reset or timeout after the request was sent is never retried, so a
POST is sent at most once.

One exchange (every attempt, the waits between them, the answer read to its end) lasts at most
`exchange_seconds(settings)`, or the invocation's time if that is shorter: each connect and each
read has its own timeout, and every socket operation also ends by that deadline
(`lucid.proxy.deadline`), so a status line, headers or body that trickle in under the read
timeout are cut there too (504). The breaker holds a half-open probe slot that long
(`BreakerPolicy.from_settings`), so a second probe never starts while the first may still be
running.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import base64
import random
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple
from urllib.parse import unquote

import httpcore

from lucid.config import Settings
from lucid.errors import BadGatewayError, GatewayTimeoutError, LucidError
from lucid.identity import CallerIdentity
from lucid.lambda_result import MAX_RESULT_BYTES, body_size_in_result
from lucid.proxy.breaker import BreakerPolicy, CircuitBreaker
from lucid.proxy.breaker_store import BreakerStore
from lucid.proxy.deadline import exchange_deadline
from lucid.proxy.discovery import BackendDirectory
from lucid.proxy.headers import Header, public_locations, request_headers, response_headers
from lucid.proxy.routing import (
    BACKENDS,
    Backend,
    Url,
    backend_for,
    check_query,
    check_remainder,
    upstream_url,
)

MAX_RESPONSE_BYTES = 6 * 1024 * 1024
# What the rest of the Lambda result may take beside the body: status, the backend's headers
# (h11 refuses a header block over 64 KB) and ours, as JSON.
RESULT_RESERVE_BYTES = 128 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Time kept back from the Lambda deadline to turn the answer into a response.
RESPONSE_MARGIN_SECONDS = 0.25
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0
# httpcore's errors, grouped as httpx grouped them (its ConnectError and ConnectTimeout,
# TimeoutException, TransportError): httpcore has no common base class for them.
_CONNECT_ERRORS = (httpcore.ConnectError, httpcore.ConnectTimeout)
_TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)
# Methods whose requests are framed even with an empty body (Content-Length: 0), as httpx did.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ProxyRequest(NamedTuple):
    """One caller request, as the route hands it over (path decoded, as ASGI gives it)."""

    method: str
    prefix: str
    remainder: str
    query: bytes
    headers: Sequence[Header]
    body: bytes
    source_ip: str
    request_id: str
    caller: CallerIdentity | None
    time_left: float | None = None  # seconds the invocation may still run (None: no limit)

    @property
    def public_path(self) -> str:
        """The path the caller asked for (the stage excluded): `/chain` for a collection root."""
        return f"/{self.prefix}/{self.remainder}" if self.remainder else f"/{self.prefix}"


class ProxyResponse(NamedTuple):
    """The backend's answer, ready to hand back to the caller."""

    status: int
    headers: list[Header]
    body: bytes


def _as_bytes(raw: Sequence[tuple[bytes, bytes]]) -> list[Header]:
    """The backend's header lines as the route hands them on: names in lower case, values one
    character per byte (Latin-1, how ASGI and Starlette carry header bytes), each in UTF-8.

    Header values travel as bytes both ways (a caller's UTF-8 `X-Note: naïve` reaches the
    backend as those bytes; a client taking text would refuse it). Mangum decodes the response's
    header bytes as UTF-8 to write the Lambda result and raises on anything else, which API
    Gateway answers with a bare 500; so a value that is not UTF-8 (obs-text from a Latin-1 backend,
    RFC 9110 section 5.5: `filename="caf\xe9"`) is read as Latin-1 and passed on in UTF-8.
    """
    lines: list[Header] = []
    for name, value in raw:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1").encode("utf-8")
        lines.append((name.decode("latin-1").lower(), value.decode("latin-1")))
    return lines


def _header(upstream: httpcore.Response, name: bytes) -> str | None:
    """The first value of header `name` (lower case) in the answer, None without one."""
    for key, value in upstream.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _body_length(method: str, upstream: httpcore.Response) -> int | None:
    """How many bytes the answer's framing allows after its head (RFC 9112 section 6.3); None
    when it is chunked or runs to the connection's end (not counted: not reused)."""
    status = upstream.status
    if method == "HEAD" or status in (204, 304) or status < 200:
        return 0
    if _header(upstream, b"transfer-encoding") is not None:
        return None
    declared = _header(upstream, b"content-length") or ""
    return int(declared) if declared.isdigit() else None


def _outbound_headers(url: Url, method: str, body: bytes, headers: list[Header]) -> list[Header]:
    """What the request carries: Host, the framing, Basic credentials when the backend URL
    holds user information (as httpx sent them), then `headers`."""
    framing = [("Host", url.netloc)]
    if body or method in _BODY_METHODS:
        framing.append(("Content-Length", str(len(body))))
    if url.userinfo:
        user, _, password = url.userinfo.partition(":")
        pair = f"{unquote(user)}:{unquote(password)}".encode()
        framing.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
    return framing + headers


class _UnreachableError(Exception):
    """The backend did not answer: a breaker failure, carrying the error the caller sees."""

    def __init__(self, error: LucidError) -> None:
        super().__init__(error.detail)
        self.error = error


def _did_not_verify(error: Exception) -> bool:
    """Whether a connect error is the backend's TLS certificate failing verification."""
    # httpcore raises its ConnectError from the ssl module's error (`map_exceptions`), and its
    # pool raises that again `from None`: the ssl error stays the context (httpcore 1.0.9)
    return isinstance(error.__cause__ or error.__context__, ssl.SSLCertVerificationError)


def exchange_seconds(settings: Settings) -> float:
    """The longest one forwarded request may take: every connect attempt its connect timeout and
    the longest wait before each retry, then the read timeout (see the module docstring)."""
    retries = settings.PROXY_RETRIES
    waits = sum(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0**a) for a in range(retries))
    connects: float = (retries + 1) * settings.PROXY_CONNECT_TIMEOUT_SECONDS
    return connects + waits + settings.PROXY_READ_TIMEOUT_SECONDS


def backoff_delays(retries: int, rng: random.Random) -> Iterator[float]:
    """Waits before each retry: exponential, capped, each one jittered in its upper half."""
    for attempt in range(retries):
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
        yield ceiling / 2 + rng.uniform(0, ceiling / 2)


class Proxy:
    """Forwards requests to the configured backends, one breaker per backend."""

    def __init__(
        self,
        settings: Settings,
        client: httpcore.ConnectionPool,
        store: BreakerStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._directory = BackendDirectory(settings)
        self._client = client
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        policy = BreakerPolicy.from_settings(settings, exchange_seconds(settings))
        self.breakers = {b.name: CircuitBreaker(b.name, policy, store) for b in BACKENDS}

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def forward(self, request: ProxyRequest) -> ProxyResponse:
        """The backend's answer to `request`, or one of the errors in the module docstring."""
        backend = backend_for(request.prefix)
        check_remainder(request.remainder)
        check_query(request.query)
        base = self._directory.base_url(backend)
        url = upstream_url(base, request.public_path, request.query)
        headers = request_headers(
            request.headers,
            request_id=request.request_id,
            source_ip=request.source_ip,
            caller=request.caller,
        )
        deadline = self._deadline(request.time_left)
        breaker = self.breakers[backend.name]
        permit = breaker.acquire()
        try:
            response = self._exchange(backend, request, (base, url), headers, deadline)
        except _UnreachableError as unreachable:
            breaker.record(permit, failed=True)
            raise unreachable.error from unreachable.__cause__
        except LucidError:
            breaker.record(permit, failed=False)  # it answered, just unusably (too large)
            raise
        breaker.record(permit, failed=response.status >= 500)
        return response

    def _deadline(self, time_left: float | None) -> float:
        now = time.monotonic()
        longest = now + exchange_seconds(self._settings)
        if time_left is None:
            return longest
        if time_left <= RESPONSE_MARGIN_SECONDS:
            raise GatewayTimeoutError("no time left in this invocation to call the backend")
        return min(longest, now + time_left - RESPONSE_MARGIN_SECONDS)

    def _exchange(
        self,
        backend: Backend,
        request: ProxyRequest,
        urls: tuple[Url, Url],
        headers: list[Header],
        deadline: float,
    ) -> ProxyResponse:
        retries = self._settings.PROXY_RETRIES if request.method in IDEMPOTENT_METHODS else 0
        delays = backoff_delays(retries, self._rng)
        while True:
            try:
                return self._attempt(backend, request, urls, headers, deadline)
            except _CONNECT_ERRORS as error:
                # A certificate that did not verify will not verify on a new handshake: not
                # retried. The failure still counts against the breaker (`forward`): until its
                # certificate changes, the backend is as unusable to us as one that is down.
                delay = None if _did_not_verify(error) else next(delays, None)
                if delay is None or time.monotonic() + delay >= deadline:
                    raise _UnreachableError(self._connect_error(backend, error)) from error
                self._sleep(delay)

    def _attempt(
        self,
        backend: Backend,
        request: ProxyRequest,
        urls: tuple[Url, Url],
        headers: list[Header],
        deadline: float,
    ) -> ProxyResponse:
        base, url = urls  # the backend's base URL, and the one asked for below it
        outbound = _outbound_headers(url, request.method, request.body, headers)
        with exchange_deadline(deadline):  # every connect, read and write ends by then
            try:
                upstream = self._client.handle_request(
                    httpcore.Request(
                        request.method,
                        httpcore.URL(
                            scheme=url.scheme, host=url.host, port=url.port, target=url.target
                        ),
                        headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in outbound],
                        content=request.body,
                        extensions={"timeout": self._timeout(deadline)},
                    )
                )
            except _CONNECT_ERRORS:
                raise
            except httpcore.TimeoutException as error:
                raise _UnreachableError(self._timed_out(backend)) from error
            except _TRANSPORT_ERRORS as error:
                raise _UnreachableError(self._dropped(backend)) from error
            try:
                if not 100 <= upstream.status <= 599:
                    # RFC 9110 section 15: a client treats such a status as a 5xx; passed on,
                    # it reached the Lambda result as it was (999)
                    raise _UnreachableError(
                        BadGatewayError(
                            f"the {backend.name} backend answered with an invalid status "
                            f"({upstream.status})"
                        )
                    )
                body = self._read_bounded(backend, upstream, deadline)
                # the connection is used again only if the answer ended where it said
                settle = getattr(upstream.extensions.get("network_stream"), "settle", None)
                if settle is not None:
                    settle(_body_length(request.method, upstream))
            finally:
                upstream.close()
        encoded = body_size_in_result(body, _header(upstream, b"content-type"))
        if encoded > MAX_RESULT_BYTES - RESULT_RESERVE_BYTES:
            # Lambda would refuse the result and API Gateway answer a bare 500 (a binary body
            # grows by a third in base64, an escaped text body up to six times): say why.
            raise self._too_large(backend)
        keep_length = request.method == "HEAD"
        answered = response_headers(_as_bytes(upstream.headers), keep_length=keep_length)
        return ProxyResponse(upstream.status, public_locations(answered, base), body)

    def _read_bounded(
        self, backend: Backend, upstream: httpcore.Response, deadline: float
    ) -> bytes:
        declared = _header(upstream, b"content-length") or ""
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            raise self._too_large(backend)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in upstream.iter_stream():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise self._too_large(backend)
                if time.monotonic() > deadline:
                    raise _UnreachableError(self._timed_out(backend))
                chunks.append(chunk)
        except httpcore.TimeoutException as error:
            raise _UnreachableError(self._timed_out(backend)) from error
        except _TRANSPORT_ERRORS as error:
            raise _UnreachableError(self._dropped(backend)) from error
        return b"".join(chunks)

    def _timeout(self, deadline: float) -> dict[str, float]:
        """httpcore's `timeout` extension: each socket operation's limit."""
        left = max(deadline - time.monotonic(), 0.001)
        connect = min(self._settings.PROXY_CONNECT_TIMEOUT_SECONDS, left)
        read = min(self._settings.PROXY_READ_TIMEOUT_SECONDS, left)
        return {"connect": connect, "read": read, "write": read, "pool": connect}

    @staticmethod
    def _connect_error(backend: Backend, error: Exception) -> LucidError:
        if isinstance(error, httpcore.ConnectTimeout):
            return GatewayTimeoutError(
                f"the {backend.name} backend did not accept a connection in time"
            )
        if _did_not_verify(error):
            return BadGatewayError(
                f"the {backend.name} backend's TLS certificate did not verify against the"
                " trusted CAs"
            )
        return BadGatewayError(f"the {backend.name} backend refused the connection")

    @staticmethod
    def _timed_out(backend: Backend) -> LucidError:
        return GatewayTimeoutError(f"the {backend.name} backend did not answer in time")

    @staticmethod
    def _dropped(backend: Backend) -> LucidError:
        return BadGatewayError(
            f"the {backend.name} backend closed the connection without an answer"
        )

    @staticmethod
    def _too_large(backend: Backend) -> LucidError:
        return BadGatewayError(
            f"the {backend.name} backend's answer is larger than a Lambda response can carry "
            f"({MAX_RESULT_BYTES} bytes, binary content base64-encoded)"
        )
