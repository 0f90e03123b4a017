"""The route class of `FunctionRouter`: a route's request-only dependencies called directly.

FastAPI resolves every dependency of a route at every request through `solve_dependencies`
(fastapi/dependencies/utils.py), a recursive call per dependency with its own parameter
extraction, cache key (`_get_cache_key`: OAuth scopes, security scheme, generator checks) and
classification of the callable: about 60 K instructions per dependency and request, whatever the
dependency does (issue 11: GET /users/me resolved `Caller` and `UsersDep` for 0.12 M of its
2.1 M instructions). Most of our dependencies take the request alone (`Caller`, the
repositories, `SourceIp`, ...: `lucid.web.stores`), and for those a plain `await dependency(
request)` gives the same value. So a route whose leading dependencies are all such is built
with a flatter dependant:

- when the route has nothing else FastAPI could refuse (no query, header, cookie or body
  parameter; path parameters that are plain `str`), the dependencies are called, in their
  order, just before the endpoint: FastAPI would have found no error between them and it;
- otherwise they become one dependency that calls them in their order, where the first of them
  stood: still before the parameters are validated, so a request both refused by a dependency
  (401) and malformed (422) gets the 401 as before.

Everything else is FastAPI's: the other dependencies, parameters, body, response model and
serialization. The dependant FastAPI documents (OpenAPI) is the route's own, unchanged. While
the app has dependency overrides (tests), the route is served exactly as FastAPI builds it, so an
override replaces a dependency as FastAPI documents. A dependency called anywhere else in the
route's graph is left to FastAPI, whose per-request cache calls it once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
RequestOnly = Callable[[Request], Coroutine[Any, Any, Any]]

# The names the flattened dependant passes the request and the leading dependencies' values by
# (no route parameter starts with an underscore: FastAPI would read it as a query parameter).
_REQUEST = "_lucid_request"
_RESOLVED = "_lucid_resolved"


def _request_only(dependant: Dependant) -> bool:
    """Whether `dependant` is `async def dependency(request: Request)` and nothing more."""
    call = dependant.call
    return (
        dependant.name is not None
        and inspect.isfunction(call)
        and inspect.iscoroutinefunction(call)
        and dependant.request_param_name is not None
        and len(inspect.signature(call).parameters) == 1
        and not (
            dependant.dependencies
            or dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.websocket_param_name
            or dependant.http_connection_param_name
            or dependant.response_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
            or dependant.own_oauth_scopes
            or dependant.parent_oauth_scopes
            or dependant.scope
            or dependant.concurrency
        )
        and dependant.use_cache
    )


def _calls(dependants: Sequence[Dependant]) -> Iterator[object]:
    for dependant in dependants:
        yield dependant.call
        yield from _calls(dependant.dependencies)


def _infallible(dependant: Dependant) -> bool:
    """Whether FastAPI can refuse no request reaching this route for its parameters."""
    return not (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    ) and all(
        field.field_info.annotation is str and not field.field_info.metadata
        for field in dependant.path_params
    )


def flattened(dependant: Dependant) -> Dependant | None:
    """The dependant to serve the route with (see the module docstring), or None for the
    route's own (no leading request-only dependency, or only one where one must stay)."""
    leading: list[Dependant] = []
    for sub in dependant.dependencies:
        if not _request_only(sub):
            break
        leading.append(sub)
    rest = dependant.dependencies[len(leading) :]
    calls = [sub.call for sub in leading]
    if not leading or len(set(map(id, calls))) != len(calls):
        return None  # nothing to flatten, or one dependency twice (FastAPI calls it once)
    if any(call in calls for call in _calls(rest)):
        return None
    direct = not rest and _infallible(dependant)
    if not direct and len(leading) == 1:
        return None  # one dependency in place of one: nothing gained
    names = [sub.name or "" for sub in leading]
    resolve: list[RequestOnly] = list(calls)  # type: ignore[arg-type]
    endpoint = dependant.call
    assert endpoint is not None
    request_name = dependant.request_param_name or _REQUEST

    async def resolved(request: Request) -> list[Any]:
        return [await dependency(request) for dependency in resolve]

    @functools.wraps(endpoint)
    async def call(**values: Any) -> Any:
        if direct:
            found = await resolved(values[request_name])
        else:
            found = values.pop(_RESOLVED)
        if dependant.request_param_name is None and direct:
            del values[_REQUEST]
        values.update(zip(names, found, strict=True))
        return await endpoint(**values)

    if direct:
        return replace(dependant, dependencies=[], call=call, request_param_name=request_name)
    fused = Dependant(call=resolved, name=_RESOLVED, request_param_name="request",
                      path=dependant.path)  # fmt: skip
    return replace(dependant, dependencies=[fused, *rest], call=call)


class FunctionRoute(APIRoute):
    """A route served with its `flattened` dependant while the app overrides no dependency."""

    def get_route_handler(self) -> Handler:
        own = super().get_route_handler()
        flat = flattened(self.dependant)
        if flat is None or not inspect.iscoroutinefunction(self.dependant.call):
            return own
        dependant = self.dependant
        self.dependant = flat
        try:
            fast = super().get_route_handler()
        finally:
            self.dependant = dependant
        provider = self.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if provider is not None and provider.dependency_overrides:
                return await own(request)
            return await fast(request)

        return handler
