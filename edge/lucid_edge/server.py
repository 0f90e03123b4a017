"""The edge as a raw ASGI application: API Gateway HTTP API in front of in-process handlers.

Per request, in API Gateway's order: request line and headers (431) -> route, or else a CORS
preflight (204) or 404 -> throttle (429) -> declared payload over 10 MB (413) -> identity source
missing (401, the body unread) -> body, read within the worker's body budget and
BODY_TIMEOUT_SECONDS (408) -> authorizer (403/500) -> event over Lambda's 6 MB (413) -> the
function on its own instances (500/503) -> HTTP response (+ CORS).
Every answer leaves through `_send`, which also writes the request's access line
(lucid_edge.access_log); the edge's own log lines carry the request id (lucid_edge.logs). The
source IP is the socket peer; client headers such as X-Forwarded-For never set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from uvicorn.config import STARTUP_FAILURE

from lucid_edge import logs
from lucid_edge.access_log import AccessEntry, AccessLog, gateway_messages
from lucid_edge.authorizer import Authorizers
from lucid_edge.concurrency import SlotFile, create_slot_file
from lucid_edge.cors import Cors
from lucid_edge.events import (
    EventBuilder,
    LambdaContext,
    attach_body,
    is_text_content_type,
    new_request_id,
)
from lucid_edge.instances import (
    Account,
    ClientGoneError,
    FunctionInstances,
    FunctionTimeoutError,
    IntegrationTimeoutError,
    Invocation,
    ThrottledError,
    close_all,
)
from lucid_edge.limits import (
    DEFAULT_BODY_BUDGET,
    MAX_INVOCATION_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_REQUEST_LINE_AND_HEADERS,
    BodyBudget,
    event_exceeds_invocation_limit,
    footprint,
    request_line_and_headers_size,
    smallest_encoding,
)
from lucid_edge.loader import LoadedFunction, Reloader, load_handler
from lucid_edge.metrics import DEFAULT_PATH, EdgeMetrics, FunctionLoad, check_path
from lucid_edge.model import RouteSpec, Template
from lucid_edge.responses import (
    HEADERS_TOO_LARGE,
    INTERNAL_ERROR,
    NO_CONTENT_STATUSES,
    NOT_FOUND,
    REQUEST_TIMEOUT,
    TOO_LARGE,
    TOO_MANY_REQUESTS,
    UNAUTHORIZED,
    UNAVAILABLE,
    HttpResponse,
    InvalidResultError,
    to_http,
    with_date,
)
from lucid_edge.routing import RouteTable
from lucid_edge.template import apply_environment, load_template
from lucid_edge.throttle import Buckets, create_bucket_file

__all__ = ["Edge", "build_app", "create_app", "create_bucket_file", "create_slot_file"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Concurrent invocations of the functions without reserved concurrency, per worker: the local
# stand-in for an account's unreserved concurrency (AWS's default is 1,000 per Region).
DEFAULT_CONCURRENCY = 32
ENV_TEMPLATE = "LUCID_EDGE_TEMPLATE"
ENV_PARAMETERS = "LUCID_EDGE_PARAMETERS"
ENV_CONCURRENCY = "LUCID_EDGE_CONCURRENCY"
ENV_BUCKETS = "LUCID_EDGE_BUCKETS"
ENV_SLOTS = "LUCID_EDGE_SLOTS"
ENV_RELOAD = "LUCID_EDGE_RELOAD"
ENV_METRICS_PATH = "LUCID_EDGE_METRICS_PATH"
ENV_BODY_TIMEOUT = "LUCID_EDGE_BODY_TIMEOUT"
# How long a client has to deliver its request body, counted from when the edge starts reading
# it (after the body budget let it in), time spent waiting for the budget excluded. API Gateway
# documents no such bound for HTTP APIs (http-api-quotas.html lists none); its longest
# documented wait on any part of a request is the 30 s integration timeout, and a client still
# sending after that could not be answered by a Lambda integration anyway. 10 MB over loopback
# takes milliseconds: only a stalled or trickling client reaches it.
BODY_TIMEOUT_SECONDS = 30.0
# A chunked body (no Content-Length) holds budget as its bytes arrive, this many at a time.
CHUNKED_STEP = 1024 * 1024
# Each worker refreshes its gauges (instances, queue depth, concurrency) this often.
SAMPLE_SECONDS = 1.0
# A queued invocation starts watching for its client hanging up after this long.
WATCH_AFTER_SECONDS = 1.0

_log = logging.getLogger("lucid_edge")
_SKIPPED_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class _RequestTooLargeError(Exception):
    pass


class _BodyTimeoutError(Exception):
    pass


class _Request:
    """One request in flight: what every step needs, and the body budget it holds."""

    __slots__ = (
        "access", "held", "id", "origin", "outside_stage", "preflight", "receive", "route",
        "scope", "started",
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.started = time.perf_counter()
        self.scope, self.receive = scope, receive
        self.route: RouteSpec | None = None  # the template route that matched, if any
        self.id = new_request_id()
        self.access = AccessEntry(scope, self.id)
        self.origin = next((v for n, v in scope["headers"] if n == b"origin"), None)
        self.held = 0
        self.preflight = False  # answered from CorsConfiguration: its headers are complete
        # A path outside the named stage reaches no API stage at all: a bare 404, no CORS.
        self.outside_stage = False


def _declared_length(raw_headers: list[tuple[bytes, bytes]]) -> int | None:
    # The body's size from Content-Length (validated by the server), 0 without a body, None
    # when chunked.
    chunked = False
    for name, value in raw_headers:
        if name == b"content-length":
            return int(value)
        if name == b"transfer-encoding":
            chunked = True
    return None if chunked else 0


class _HangUpWatch:
    """Cancels a queued invocation whose client hangs up. It starts watching only if the
    invocation still waits after WATCH_AFTER_SECONDS: most waits are shorter than a watch costs."""

    def __init__(self, receive: Receive, instances: FunctionInstances, invocation: Invocation):
        self._receive, self._instances, self._invocation = receive, instances, invocation
        self._timer: asyncio.TimerHandle | None = invocation.loop.call_later(
            WATCH_AFTER_SECONDS, self._start
        )
        self._task: asyncio.Task[None] | None = None

    def _start(self) -> None:
        self._timer = None
        if self._invocation.queued:
            self._task = self._invocation.loop.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._invocation.future.done():
            self._instances.cancel(self._invocation)  # it never runs if it has not started
            self._invocation.future.set_exception(ClientGoneError())

    def stop(self) -> None:
        """The answer is in: stop watching."""
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()


class Edge:
    """The ASGI application serving one template."""

    def __init__(
        self,
        template: Template,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        bucket_file: Path | None = None,
        slot_file: Path | None = None,
        reload: bool = False,
        body_budget: int = DEFAULT_BODY_BUDGET,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
        metrics_path: str = DEFAULT_PATH,
    ) -> None:
        self.template = template
        api = template.api
        self.routes = RouteTable(api.routes, api.stage)
        # The edge's own endpoint (lucid_edge.metrics): refused where a route would answer it.
        check_path(metrics_path, lambda method, path: self.routes.match(method, path) is not None)
        self.metrics_path = metrics_path
        self._route_index = {route.route_key: i for i, route in enumerate(api.routes)}
        needed = {r.function for r in api.routes} | {a.function for a in api.authorizers.values()}
        self.functions: dict[str, LoadedFunction] = {
            fid: load_handler(spec.code_uri, spec.handler)
            for fid, spec in template.functions.items()
            if fid in needed
        }
        self.account = Account(concurrency)
        self.slots = SlotFile(slot_file, reservations(template))
        self.instances = {
            fid: FunctionInstances(fid, self.account, self.slots.slots.get(fid))
            for fid in self.functions
        }
        self.events = EventBuilder(api.logical_id, api.stage)
        self.cors = Cors(api.cors) if api.cors is not None else None
        self.metrics = EdgeMetrics(self._function_load, self._concurrency)
        self.metrics.expect(api.routes, api.authorizers, self.functions)
        self.authorizers = Authorizers(api.authorizers, self.metrics.authorizer)
        self._sampler: asyncio.TimerHandle | None = None
        self.budget = BodyBudget(body_budget)
        self.body_timeout = body_timeout
        self.access_log = AccessLog(
            api.access_log_format,
            api_id=api.logical_id,
            stage=api.stage,
            gateway_messages=gateway_messages(),
        )
        own_file = bucket_file is None
        bucket_path = create_bucket_file(len(api.routes)) if own_file else bucket_file
        assert bucket_path is not None
        self.buckets = Buckets(
            bucket_path, [r.throttle or api.default_throttle for r in api.routes]
        )
        if own_file:
            bucket_path.unlink()  # the mapping stays valid; nothing to clean up later
        self.reloader = Reloader(self.functions.values()) if reload else None
        if self.reloader is not None:
            self.reloader.start()

    def close(self) -> None:
        """Stop the reloader and the metrics, and let the functions' instances retire."""
        if self.reloader is not None:
            self.reloader.stop()
        if self._sampler is not None:
            self._sampler.cancel()
        self.metrics.close()
        close_all(self.account, self.instances.values())
        with contextlib.suppress(ValueError, OSError):
            self.buckets.close()
        with contextlib.suppress(OSError):
            self.slots.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # A metrics path of "" never equals a request path: no endpoint at all.
            if scope["path"] == self.metrics_path and scope["method"] in ("GET", "HEAD"):
                await self._send_metrics(send, scope["method"] == "HEAD")
                return
            request = _Request(scope, receive)
            try:
                with logs.request_id_scope(request.id):
                    try:
                        response = await self._answer(request)
                    except ClientGoneError:
                        return
                    await self._send(send, request, response)
                    self.metrics.answered(request.route, response, request.started)
            finally:
                if request.held:  # the body and its event are gone with the answer
                    self.budget.release(request.held)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    def _preflight(self, request: _Request) -> HttpResponse | None:
        if self.cors is None or request.scope["method"] != "OPTIONS" or request.origin is None:
            return None
        if not any(n == b"access-control-request-method" for n, _ in request.scope["headers"]):
            return None
        request.preflight = True
        return HttpResponse(204, self.cors.preflight_headers(request.origin), b"")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._sample()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, request: _Request) -> HttpResponse:
        scope = request.scope
        method: str = scope["method"]
        path: str = scope["path"]
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        raw_path: bytes = scope.get("raw_path") or path.encode()
        size = request_line_and_headers_size(method, raw_path, scope["query_string"], raw_headers)
        if size > MAX_REQUEST_LINE_AND_HEADERS:
            return HEADERS_TOO_LARGE
        if self.routes.stage_path(path) is None:
            request.outside_stage = True
            return NOT_FOUND
        match = self.routes.match(method, path)
        if match is None:
            # API Gateway answers a preflight itself only when no route takes `OPTIONS` here;
            # an `ANY`, `OPTIONS` or `$default` route receives it like any request, through its
            # authorizer (lucid_edge.cors).
            return self._preflight(request) or NOT_FOUND
        route = request.route = match.route
        request.access.route_key = route.route_key
        if not self.buckets.take(self._route_index[route.route_key]):
            return TOO_MANY_REQUESTS
        declared = _declared_length(raw_headers)
        if declared is not None and declared > MAX_PAYLOAD_BYTES:
            return TOO_LARGE
        client = scope.get("client")
        server = scope.get("server")
        event = self.events.build(
            method=method,
            path=path,
            # Always ASCII: uvicorn answers 400 to a request target with a byte >= 0x80. It
            # stays percent-encoded in rawQueryString and is decoded as UTF-8 in
            # queryStringParameters, as on AWS (notes/aws-facts.md, rv-inst).
            raw_query=scope["query_string"].decode("latin-1"),
            raw_headers=raw_headers,
            http_version=scope["http_version"],
            source_ip=client[0] if client else "127.0.0.1",
            server_port=str(server[1]) if server else "80",
            route_key=route.route_key,
            path_parameters=match.path_parameters,
            body=b"",
            request_id=request.id,
        )
        authorizer = route.authorizer
        identity = None if authorizer is None else self.authorizers.identity(authorizer, event)
        if authorizer is not None and identity is None:
            return UNAUTHORIZED  # API Gateway refuses it before invoking anything
        text = is_text_content_type(event["headers"].get("content-type"))
        if declared is not None and smallest_encoding(declared, text) > MAX_INVOCATION_BYTES:
            # Lambda will refuse it whatever it holds: the authorizer still answers first, and
            # the body is never read.
            return await self._authorize(route, event, request, identity) or TOO_LARGE
        try:
            body = await self._read_body(request, declared)
        except _RequestTooLargeError:
            return await self._authorize(route, event, request, identity) or TOO_LARGE
        except _BodyTimeoutError:
            # The request never arrived whole: nothing is invoked, the authorizer included.
            return REQUEST_TIMEOUT
        attach_body(event, body)
        too_large = event_exceeds_invocation_limit(event, body)
        del body  # the event holds it now
        denied = await self._authorize(route, event, request, identity)
        if denied is not None:
            return denied
        if too_large:
            return TOO_LARGE
        return await self._invoke(route, event, request)

    async def _read_body(self, request: _Request, declared: int | None) -> bytearray:
        # A body holds its share of the budget from when its first bytes arrive (a client that
        # sends nothing holds nothing): with a Content-Length, all of it at once; chunked,
        # CHUNKED_STEP bytes at a time as they come. Until then uvicorn buffers at most its
        # flow-control window per connection. The share is given back with the answer; a client
        # that does not deliver its body within `body_timeout` (time spent waiting for the
        # budget excluded) is answered 408 and gives it back then.
        covered = 0  # body bytes the budget held covers
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await request.receive()
            except TimeoutError:
                _log.warning("request body not received within %.1f s: 408", self.body_timeout)
                raise _BodyTimeoutError from None
            if message["type"] == "http.disconnect":
                raise ClientGoneError
            chunk = message.get("body", b"")
            size = len(body) + len(chunk)
            if size > MAX_INVOCATION_BYTES:
                raise _RequestTooLargeError
            if size > covered:
                # Lambda's limit caps a chunked body's share: past it, the answer is 413.
                step = -(-size // CHUNKED_STEP) * CHUNKED_STEP
                target = declared if declared is not None else min(step, MAX_INVOCATION_BYTES)
                waited = loop.time()
                more = footprint(target) - footprint(covered)
                request.held += await self.budget.acquire(more, held=request.held)
                deadline += loop.time() - waited  # the budget's wait is not the client's
                covered = target
            body += chunk
            if not message.get("more_body", False):
                return body

    async def _authorize(
        self,
        route: RouteSpec,
        event: dict[str, Any],
        request: _Request,
        identity: tuple[str, ...] | None,
    ) -> HttpResponse | None:
        # `identity`: what the authorizer's identity source read from this event (None only
        # for a route without an authorizer: a request without it was answered 401 already).
        if route.authorizer is None:
            return None
        route_arn = self.events.route_arn(request.scope["method"], request.scope["path"])
        call = functools.partial(self._call, request)
        if not self.access_log.enabled:
            # What `authorized` records is read only by the access line, which is not written
            # (LOG_LEVEL above INFO, as `make bench` runs): ~7 K instructions a signed-in
            # request spared (valgrind, `edgehot`), none of them paid by a public route.
            denied, _ = await self.authorizers.authorize(
                route.authorizer, event, route_arn, call, identity
            )
            return denied
        started = time.monotonic()
        denied, context = await self.authorizers.authorize(
            route.authorizer, event, route_arn, call, identity
        )
        # The decision's own context: the function may change the copy in its event before
        # the access line is written.
        request.access.authorized(started, denied, {"lambda": context})
        return denied

    async def _invoke(
        self, route: RouteSpec, event: dict[str, Any], request: _Request
    ) -> HttpResponse:
        function_id = route.function
        access = request.access
        started = time.monotonic()
        try:
            result = await self._call(request, function_id, event, route.timeout, integration=True)
        except ThrottledError:
            _log.error("%s throttled: its reserved concurrency is in use", function_id)
            access.integrated(started, 429, "Rate Exceeded.")
            self.metrics.function_error(function_id, "throttled")
            return INTERNAL_ERROR
        except FunctionTimeoutError:
            timeout = self.template.functions[function_id].timeout
            _log.error("%s timed out after %.1f s", function_id, timeout)
            access.integrated(started, 200, f"Task timed out after {timeout:.2f} seconds")
            self.metrics.function_error(function_id, "timeout")
            return INTERNAL_ERROR
        except IntegrationTimeoutError:
            _log.error("%s: integration timeout after %.1f s", function_id, route.timeout)
            access.integrated(started, None, "the integration timed out")
            self.metrics.function_error(function_id, "integration_timeout")
            return UNAVAILABLE
        except ClientGoneError:
            raise
        except Exception as error:
            _log.exception("%s raised", function_id)
            access.integrated(started, 200, f"the function raised {type(error).__name__}")
            self.metrics.function_error(function_id, "raised")
            return INTERNAL_ERROR
        try:
            response = to_http(result)
        except InvalidResultError as err:
            _log.error("%s returned an invalid result: %s", function_id, err)
            access.integrated(started, 200, "the function's response is malformed")
            self.metrics.function_error(function_id, "invalid_result")
            return INTERNAL_ERROR
        access.integrated(started, 200, None, response.status)
        return response

    async def _call(
        self,
        request: _Request,
        function_id: str,
        event: dict[str, Any],
        integration_timeout: float,
        *,
        integration: bool = False,
    ) -> Any:
        """Invoke `function_id` for `request`. Both deadlines count from now, when API Gateway
        would invoke (the whole request received): any wait for an instance counts. The
        route's own function (`integration`, not the authorizer) leaves its Lambda request id
        for the access line."""
        spec = self.template.functions[function_id]
        now = time.monotonic()
        function_deadline = now + spec.timeout
        context = LambdaContext(function_id, spec.memory_size, spec.timeout)
        if integration:
            request.access.endpoint_request_id = context.aws_request_id
        instances = self.instances[function_id]
        invocation = instances.submit(
            self.functions[function_id].handler,
            (event, context),
            function_deadline=function_deadline,
            integration_deadline=now + integration_timeout,
        )
        watch = _HangUpWatch(request.receive, instances, invocation) if invocation.queued else None
        try:
            return await invocation.future
        finally:
            if watch is not None:
                watch.stop()
            if not invocation.future.done() or invocation.future.cancelled():
                instances.cancel(invocation)

    def _function_load(self) -> dict[str, FunctionLoad]:
        return {
            fid: FunctionLoad(instances.instance_count, instances.queued)
            for fid, instances in self.instances.items()
        }

    def _concurrency(self) -> tuple[int, int]:
        return self.account.running, self.account.limit

    def _sample(self) -> None:
        # Every worker refreshes its own gauges; whichever answers /metrics sums them all.
        self.metrics.sample()
        self._sampler = asyncio.get_running_loop().call_later(SAMPLE_SECONDS, self._sample)

    async def _send_metrics(self, send: Send, head: bool) -> None:
        # Reading the workers' files and Redis blocks: off the event loop.
        body, content_type = await asyncio.to_thread(self.metrics.exposition)
        headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": with_date(headers)})
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _send(self, send: Send, request: _Request, response: HttpResponse) -> None:
        headers = [(n, v) for n, v in response.headers if n not in _SKIPPED_HEADERS]
        if self.cors is not None and not (request.preflight or request.outside_stage):
            headers = self.cors.apply(headers, request.origin)
        if response.status not in NO_CONTENT_STATUSES:
            headers.append((b"content-length", str(len(response.body)).encode()))
        headers.append((b"apigw-requestid", request.id.encode()))
        if response is REQUEST_TIMEOUT:
            # The rest of its body may still come: this connection cannot carry another request
            # (RFC 9110 section 15.5.9: a 408 closes the connection).
            headers.append((b"connection", b"close"))
        # One Date: the function's when its result has one, else the edge's (uvicorn's is off).
        headers = with_date(headers)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        self.access_log.write(request.access, response.status, len(response.body), id(response))


def reservations(template: Template) -> dict[str, int]:
    """ReservedConcurrentExecutions of each function of `template` that sets it."""
    return {
        fid: spec.reserved_concurrency
        for fid, spec in template.functions.items()
        if spec.reserved_concurrency is not None
    }


def build_app(
    template_path: Path,
    overrides: dict[str, str] | None = None,
    **options: Any,
) -> Edge:
    """Load the template, export its environment and build the edge (`options`: `Edge`'s)."""
    template = load_template(template_path, overrides)
    apply_environment(template)
    return Edge(template, **options)


def create_app() -> Edge:
    """App factory for uvicorn workers: configuration comes from the parent's environment."""
    logs.configure()  # the worker's own lines as JSON, like the functions' (lucid_edge.logs)
    buckets = os.environ.get(ENV_BUCKETS)
    slots = os.environ.get(ENV_SLOTS)
    try:
        edge = build_app(
            Path(os.environ.get(ENV_TEMPLATE, "infra/template.yaml")),
            json.loads(os.environ.get(ENV_PARAMETERS, "{}")),
            concurrency=int(os.environ.get(ENV_CONCURRENCY) or DEFAULT_CONCURRENCY),
            bucket_file=Path(buckets) if buckets else None,
            slot_file=Path(slots) if slots else None,
            reload=os.environ.get(ENV_RELOAD) == "1",
            body_timeout=float(os.environ.get(ENV_BODY_TIMEOUT) or BODY_TIMEOUT_SECONDS),
            metrics_path=os.environ.get(ENV_METRICS_PATH, DEFAULT_PATH),  # "": no endpoint
        )
    except Exception:
        # A worker that cannot build the edge never will: the same template, functions and
        # files wait for its replacement. uvicorn 0.55.0 lets a factory's error other than
        # TypeError escape (config.py `Config.load`), so the worker ended with status 1, which
        # its supervisor restarts forever; STARTUP_FAILURE (3) is the status it stops the edge
        # on, "would fail the same way on every restart" (supervisors/multiprocess.py
        # `keep_subprocess_alive`). With one worker, `lucid serve` itself exits with it.
        _log.exception("this worker cannot start the edge")
        sys.exit(STARTUP_FAILURE)
    # A worker holds every function at once, which no Lambda instance does: ~100,000 objects
    # that live as long as it. Frozen, no collection walks them again. Measured with the real
    # template under /health load at 64 connections: 1-2 full collections per worker every 8 s,
    # 37-44 ms each (every request in flight waits) unfrozen, 0.6-0.7 ms frozen. Objects made
    # while serving are collected as before; with --reload, replaced modules stay in memory.
    gc.freeze()
    return edge
