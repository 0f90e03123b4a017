"""The edge as a raw ASGI application: API Gateway HTTP API in front of in-process handlers.

Per request: CORS preflight -> route (404) -> throttle (429) -> body size (413) -> authorizer
(401/403/500) -> payload 2.0 event -> invoke in a thread (502/503) -> HTTP response (+ CORS).
The source IP is the socket peer; client headers such as X-Forwarded-For never set it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from lucid_edge.authorizer import Authorizers
from lucid_edge.cors import Cors
from lucid_edge.events import EventBuilder, LambdaContext, new_request_id
from lucid_edge.invoke import InvocationPool, InvocationTimeoutError
from lucid_edge.loader import LoadedFunction, Reloader, load_handler
from lucid_edge.model import Template
from lucid_edge.responses import (
    BAD_GATEWAY,
    NOT_FOUND,
    TOO_LARGE,
    TOO_MANY_REQUESTS,
    UNAVAILABLE,
    HttpResponse,
    InvalidResultError,
    to_http,
)
from lucid_edge.routing import RouteTable
from lucid_edge.template import apply_environment, load_template
from lucid_edge.throttle import Buckets, create_bucket_file

__all__ = ["Edge", "build_app", "create_app", "create_bucket_file"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_REQUEST_BYTES = 10 * 1024 * 1024
DEFAULT_CONCURRENCY = 4
ENV_TEMPLATE = "LUCID_EDGE_TEMPLATE"
ENV_PARAMETERS = "LUCID_EDGE_PARAMETERS"
ENV_CONCURRENCY = "LUCID_EDGE_CONCURRENCY"
ENV_BUCKETS = "LUCID_EDGE_BUCKETS"
ENV_RELOAD = "LUCID_EDGE_RELOAD"

_log = logging.getLogger("lucid_edge")
_SKIPPED_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class _RequestTooLargeError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise _RequestTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Edge:
    """The ASGI application serving one template."""

    def __init__(
        self,
        template: Template,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        bucket_file: Path | None = None,
        reload: bool = False,
    ) -> None:
        self.template = template
        api = template.api
        self.routes = RouteTable(api.routes, api.stage)
        self._route_index = {route.route_key: i for i, route in enumerate(api.routes)}
        needed = {r.function for r in api.routes} | {a.function for a in api.authorizers.values()}
        self.functions: dict[str, LoadedFunction] = {
            fid: load_handler(spec.code_uri, spec.handler)
            for fid, spec in template.functions.items()
            if fid in needed
        }
        self.pool = InvocationPool(concurrency)
        self.events = EventBuilder(api.logical_id, api.stage)
        self.cors = Cors(api.cors) if api.cors is not None else None
        self.authorizers = Authorizers(
            api.authorizers, self.functions, template.functions, self.pool
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
        """Stop the reloader and the invocation threads."""
        if self.reloader is not None:
            self.reloader.stop()
        self.pool.close()
        with contextlib.suppress(ValueError, OSError):
            self.buckets.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request_id = new_request_id()
            preflight = self._preflight(scope["method"], scope["path"], scope["headers"])
            if preflight is not None:
                await self._send(send, preflight, preflight.headers, request_id)
                return
            try:
                response, origin = await self._handle(scope, receive, request_id)
            except _ClientGoneError:
                return
            headers = [(n, v) for n, v in response.headers if n not in _SKIPPED_HEADERS]
            if self.cors is not None:
                headers = self.cors.apply(headers, origin)
            await self._send(send, response, headers, request_id)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    def _preflight(
        self, method: str, path: str, raw_headers: list[tuple[bytes, bytes]]
    ) -> HttpResponse | None:
        # Outside the stage no CORS applies: the request reaches no API stage at all (404).
        if self.cors is None or method != "OPTIONS" or self.routes.stage_path(path) is None:
            return None
        origin = next((v for n, v in raw_headers if n == b"origin"), None)
        if origin is None or not any(n == b"access-control-request-method" for n, _ in raw_headers):
            return None
        return HttpResponse(204, self.cors.preflight_headers(origin), b"")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(
        self, scope: Scope, receive: Receive, request_id: str
    ) -> tuple[HttpResponse, bytes | None]:
        method: str = scope["method"]
        path: str = scope["path"]
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        origin = next((v for n, v in raw_headers if n == b"origin"), None)
        match = self.routes.match(method, path)
        if match is None:
            return NOT_FOUND, origin
        route = match.route
        if not self.buckets.take(self._route_index[route.route_key]):
            return TOO_MANY_REQUESTS, origin
        try:
            body = await _read_body(receive)
        except _RequestTooLargeError:
            return TOO_LARGE, origin
        client = scope.get("client")
        server = scope.get("server")
        event = self.events.build(
            method=method,
            path=path,
            raw_query=scope["query_string"].decode("latin-1"),
            raw_headers=raw_headers,
            http_version=scope["http_version"],
            source_ip=client[0] if client else "127.0.0.1",
            server_port=str(server[1]) if server else "80",
            route_key=route.route_key,
            path_parameters=match.path_parameters,
            body=body,
            request_id=request_id,
        )
        if route.authorizer is not None:
            route_arn = self.events.route_arn(method, path)
            denied = await self.authorizers.authorize(route.authorizer, event, route_arn)
            if denied is not None:
                return denied, origin
        return await self._invoke(route.function, route.timeout, event), origin

    async def _invoke(self, function_id: str, limit: float, event: dict[str, Any]) -> HttpResponse:
        spec = self.template.functions[function_id]
        context = LambdaContext(function_id, spec.memory_size, limit)
        handler = self.functions[function_id].handler
        try:
            result = await self.pool.run(handler, event, context, limit=limit)
        except InvocationTimeoutError:
            _log.error("%s timed out after %.1f s", function_id, limit)
            return UNAVAILABLE
        except Exception:
            _log.exception("%s raised", function_id)
            return BAD_GATEWAY
        try:
            return to_http(result)
        except InvalidResultError as err:
            _log.error("%s returned an invalid result: %s", function_id, err)
            return BAD_GATEWAY

    async def _send(
        self,
        send: Send,
        response: HttpResponse,
        headers: list[tuple[bytes, bytes]],
        request_id: str,
    ) -> None:
        headers.append((b"content-length", str(len(response.body)).encode()))
        headers.append((b"apigw-requestid", request_id.encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})


def build_app(
    template_path: Path,
    overrides: dict[str, str] | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    bucket_file: Path | None = None,
    reload: bool = False,
) -> Edge:
    """Load the template, export its environment and build the edge."""
    template = load_template(template_path, overrides)
    apply_environment(template)
    return Edge(template, concurrency=concurrency, bucket_file=bucket_file, reload=reload)


def create_app() -> Edge:
    """App factory for uvicorn workers: configuration comes from the parent's environment."""
    buckets = os.environ.get(ENV_BUCKETS)
    edge = build_app(
        Path(os.environ.get(ENV_TEMPLATE, "infra/template.yaml")),
        json.loads(os.environ.get(ENV_PARAMETERS, "{}")),
        concurrency=int(os.environ.get(ENV_CONCURRENCY, str(DEFAULT_CONCURRENCY))),
        bucket_file=Path(buckets) if buckets else None,
        reload=os.environ.get(ENV_RELOAD) == "1",
    )
    # A worker holds every function at once, which no Lambda instance does: without this, each
    # full collection walks all their modules (tens of ms on a loaded machine) inside a request.
    gc.freeze()
    return edge
