"""The proxied routes: GET /chain/info (public) and ANY /chain|manifests|trust|nodes, each
collection root and everything below it ({proxy+}).

Only GET /chain/info is declared public in the template; every other route needs the caller the
authorizer vouched for (401 without one, in case a route is ever deployed without it).
The handlers are `async` but call the synchronous proxy directly: one Lambda invocation owns
the event loop, so blocking it costs nothing, and skipping the thread-pool hop saves time.
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from starlette.convertors import Convertor, register_url_convertor

from lucid.identity import CallerIdentity
from lucid.proxy import ROUTES, Proxy, ProxyRequest
from lucid.web.app import FunctionRouter
from lucid.web.deps import Caller, OptionalCaller, SourceIp
from lucid.web.openapi import Responses, problems
from lucid.web.proxy import ProxyDep

# The methods the template routes here, one route each (infra/template.yaml): not OPTIONS, which
# API Gateway keeps to answer CORS preflights itself (an OPTIONS or ANY route behind the
# authorizer would send them there, to a 401), nor HEAD, and only GET and POST on a collection
# root: SAM adds a statement per route to the function's resource policy, which Lambda caps at
# 20 KB.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ROOT_METHODS = ["GET", "POST"]

# The backend's answer is passed through: its status, headers and body are not ours to describe.
PASSED_THROUGH = "The backend's answer, passed through (status, headers and body as it sent them)"
_ANSWERS: Responses = {
    200: {"description": PASSED_THROUGH},
    "default": {"description": PASSED_THROUGH},
    **problems(
        400,
        502,
        503,
        504,
        descriptions={
            400: "Refused before any connection (the detail says which): a path that holds a "
            "dot segment (`.`, `..`, or `..;x`, which servlet containers read as `..`), an "
            "empty segment, a backslash, an absolute URL or a control character, in its own "
            "characters, in any percent-decoding of them or in their compatibility forms "
            "(fullwidth `\uff0e\uff0e`, `\uff3c`); a path with an invalid percent-encoding "
            "(not UTF-8) or percent-encoded too many times; a query string holding a control "
            "character; a header whose name is not an HTTP token or whose value holds a "
            "control character",
            503: "The backend is not configured, or its circuit breaker is open (Retry-After)",
        },
        retry_after={503: False},
    ),
}
_ANY_BODY = {
    "requestBody": {
        "required": False,
        "description": "forwarded to the backend as it is, with its Content-Type, whatever the "
        "method",
        "content": {"*/*": {"schema": {}}},
    }
}


class _AnyRemainder(Convertor[str]):
    """Like `path`, but also across CR/LF, so the proxy refuses such a path with a precise 400
    instead of the router answering 404."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("proxy_remainder", _AnyRemainder())

router = FunctionRouter()


def _time_left(request: Request) -> float | None:
    context = request.scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else None


async def _forward(
    request: Request,
    proxy: Proxy,
    prefix: str,
    remainder: str,
    caller: CallerIdentity | None,
    source_ip: str,
) -> Response:
    answer = proxy.forward(
        ProxyRequest(
            method=request.method,
            prefix=prefix,
            remainder=remainder,
            query=request.scope.get("query_string", b""),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            body=await request.body(),
            source_ip=source_ip,
            request_id=str(request.scope.get("state", {}).get("request_id", "")),
            caller=caller,
            time_left=_time_left(request),
        )
    )
    response = Response(content=answer.body, status_code=answer.status)
    for name, value in answer.headers:
        response.headers.append(name, value)
    return response


@router.get("/chain/info", response_class=Response, responses=_ANSWERS)
async def chain_info(
    request: Request, proxy: ProxyDep, caller: OptionalCaller, source_ip: SourceIp
) -> Response:
    """Public: the blockchain's info, for anonymous callers too."""
    return await _forward(request, proxy, "chain", "info", caller, source_ip)


def _protected(prefix: str) -> Callable[..., Awaitable[Response]]:
    async def forward(
        request: Request, rest: str, proxy: ProxyDep, caller: Caller, source_ip: SourceIp
    ) -> Response:
        return await _forward(request, proxy, prefix, rest, caller, source_ip)

    forward.__name__ = f"proxy_{prefix}"
    forward.__doc__ = f"Forwarded to the {prefix} backend for a signed-in caller."
    return forward


def _protected_root(prefix: str) -> Callable[..., Awaitable[Response]]:
    async def forward(
        request: Request, proxy: ProxyDep, caller: Caller, source_ip: SourceIp
    ) -> Response:
        return await _forward(request, proxy, prefix, "", caller, source_ip)

    forward.__name__ = f"proxy_{prefix}_root"
    forward.__doc__ = f"/{prefix}: the collection root, forwarded for a signed-in caller."
    return forward


# One route per prefix for all its methods (each route costs a cold start its dependency
# analysis); the document gives each method its own operation id (`proxy_chain_get`, ...).
for _prefix in ROUTES:
    for _path, _handler, _what, _methods in (
        (f"/{_prefix}", _protected_root(_prefix), " backend's collection root", ROOT_METHODS),
        (f"/{_prefix}/{{rest:proxy_remainder}}", _protected(_prefix), " backend", METHODS),
    ):
        router.add_api_route(
            _path,
            _handler,
            methods=_methods,
            summary=f"Forward to the {_prefix}{_what}",
            response_class=Response,
            responses={**_ANSWERS, **problems(401)},
            openapi_extra=_ANY_BODY,
        )
