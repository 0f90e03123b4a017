"""The route class of `FunctionRouter`: a route's plain dependencies called directly.

FastAPI resolves every dependency of a route at every request through `solve_dependencies`
(fastapi/dependencies/utils.py), a recursive call per dependency with its own parameter
extraction, cache key (`_get_cache_key`: OAuth scopes, security scheme, generator checks) and
classification of the callable: about 60 K instructions per dependency and request, whatever the
dependency does (issue 11: GET /users/me resolved `Caller` and `UsersDep` for 0.12 M of its
2.1 M instructions). Most of our dependencies are plain: an `async def` taking the request
and/or other plain dependencies, nothing else (`Caller`, the repositories, `SourceIp`,
`SettingsDep`, ...: `lucid.web.stores`). For those, awaiting each in FastAPI's order (a
dependency's own dependencies first, depth first, in declaration order; each callable once per
request, as FastAPI's cache has it) gives the same values. So a route whose
leading dependencies are plain is built with a flatter dependant:

- when all its dependencies are plain, they are called just before the endpoint. FastAPI calls
  them after reading the body as JSON and before validating the parameters and the body, so
  when FastAPI finds the request malformed (422, the endpoint not called) the route calls them
  then, before answering: a request both refused by a dependency (401) and malformed gets the
  401 as before, and one whose body is not JSON the 422 (FastAPI refuses it first);
- otherwise they become one dependency that calls them, where the first of them stood.

A route taking its whole body as one model that declares `same_from_json` (`lucid.sessions.
schemas.SessionCreate`), whose other parameters cannot be refused (plain `str` path parameters,
optional headers), is also served lean when the request sends none of those headers and a body
with `Content-Type: application/json` that `model.model_validate_json` accepts: pydantic parses
and validates the raw bytes in one call, the endpoint gets the headers' default (None) and the
dependencies are called as above. FastAPI's own path (`get_request_handler`) pays ~140 K
instructions more for the same request (valgrind, CPython 3.11, FastAPI 0.165.0): the content
type parsed by `email.message` (~24 K), `json.loads` (~18 K), `request_body_to_args` (~28 K) and
one absent optional header (`request_params_to_args`: ~84 K for Idempotency-Key). Any other
request (a header sent, another content type, a body the model refuses) is served by FastAPI's
path as before, which answers every error exactly as it did; `same_from_json` is the model's
promise that what `model_validate_json` accepts, `json.loads` and `model_validate` accept with the
same values (tests/shared/sessions pins it for the sessions models).

When all its dependencies are plain, a path parameter the endpoint takes as a plain `str` of a
segment the route gives as a str is passed as the route matched it (`_as_matched`), not read
and validated again by FastAPI: the same value, ~46 K instructions less per request.

Everything else is FastAPI's: the other dependencies, parameters, body, response model and
serialization. The dependant FastAPI documents (OpenAPI) is the route's own, unchanged. While
the app has dependency overrides (tests), the route is served exactly as FastAPI builds it, so an
override replaces a dependency as FastAPI documents. A route where one of these dependencies is
also needed by one FastAPI resolves is left to FastAPI, whose per-request cache calls it once.

FastAPI INTERNALS it relies on, read in FastAPI 0.165.0 (the version requirements.lock pins).
tests/shared/web/test_flat_dependencies.py fails naming the installed version when the pin moves,
and when one of these changes shape; read them again before moving its PINNED_FASTAPI:
    fastapi/dependencies/models.py:35 `Dependant`, a dataclass: `_plain` and `_infallible` read
        its every field (37-56; one added may be a kind of parameter `_plain` must refuse), and
        the flat dependants are made by `dataclasses.replace` and `Dependant(call=, name=,
        request_param_name=, path=)`
    fastapi/dependencies/models.py:87 `_get_cache_key`: a dependency's call, its OAuth scopes and
        its computed scope (`_get_computed_scope` 240), which for a plain dependency (no scopes,
        no generator) is its call alone, the key `_plan` keeps one value per
    fastapi/dependencies/utils.py:671 `solve_dependencies`: a dependant's dependencies in
        declaration order (704), each one's own first (726), one value per cache key and request
        when `use_cache` (742-747, 775), a coroutine awaited with its values (762), then the
        parameters and the body validated (776-805), the request passed by
        `request_param_name` (810); overrides read from the route's
        `dependency_overrides_provider.dependency_overrides` at each request (708-711)
    fastapi/routing.py:406 `get_request_handler`: the body read, as JSON when the content type
        says so (460-488), a JSONDecodeError raised as a RequestValidationError from it
        (489-504), then `solve_dependencies` (528), the endpoint called only without errors
        (541), which are raised as one RequestValidationError (808-815)
    fastapi/routing.py:1322 `APIRoute.get_route_handler`: the handler built from
        `self.dependant` (1330), or from an inclusion's copy of the route while one is being
        built (1326-1328, `_effective_route_context_var` 916, set at 1598; `create_app` serves a
        FunctionRouter's routes without including them)
    fastapi/dependencies/utils.py:979 `request_params_to_args`: a path parameter read from
        `request.path_params` by `get_validation_alias` (1476: `validation_alias`, else
        `alias`) and validated by its field (pydantic, lax: a str given as a str), nothing
        else (`_get_param_model` 184: no model for a `str`; `_get_multidict_value` 853)
    fastapi/_compat/v2.py:114 `ModelField.field_info`: pydantic's FieldInfo (`annotation`,
        `metadata`); `alias` (121) and `validation_alias` (126), a str or None
    fastapi/routing.py:463-488 a JSON body: read when the route has a `body_field`, parsed as
        JSON when its first content-type header's media type is application/json
        (`request.headers.get`, then `email.message`), validated by `request_body_to_args`
        (utils.py:1204: one body field not embedded is the whole body, `ModelField.validate`,
        v2.py:173: `validate_python(value, from_attributes=True)`)
    fastapi/dependencies/utils.py:979 `request_params_to_args`: a header looked up by
        `_get_param_aliases` (1481) in starlette's Headers (case-insensitive on the ASGI raw
        names, which are lowercase), an absent one given `deepcopy(field.default)` unvalidated
        when not required (832)
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import functools
import inspect
from collections.abc import Callable, Collection, Coroutine, Iterator, Sequence
from dataclasses import replace
from json import JSONDecodeError
from typing import Any, NamedTuple

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import _get_param_aliases
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.convertors import PathConvertor, StringConvertor
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# The names the flattened dependant passes the request and the leading dependencies' values by
# (no route parameter starts with an underscore: FastAPI would read it as a query parameter).
_REQUEST = "_lucid_request"
_RESOLVED = "_lucid_resolved"
# Set in the request's scope once the dependencies were called (a validation error after that is
# the endpoint's own).
_CALLED = "lucid.dependencies_called"
# The body a lean route's request was validated into (`Lean.body_of`), until its endpoint takes it.
_BODY = "lucid.json_body"
_JSON = b"application/json"


def _plain(dependant: Dependant) -> bool:
    """Whether `dependant` is an `async def` taking at most the request and dependencies that
    are plain too (`current_settings`, `Caller`, the repositories, ...), nothing more."""
    call = dependant.call
    if not (
        dependant.name is not None
        and inspect.isfunction(call)
        and inspect.iscoroutinefunction(call)
        and dependant.use_cache
    ) or (
        dependant.path_params
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
    ):
        return False
    # Its parameters counted from its code, not with inspect.signature (~60 K instructions a
    # call, at every cold start for every dependency of every route): a function wrapping
    # another, or taking *args or **kwargs, is left to FastAPI.
    code = call.__code__
    if hasattr(call, "__wrapped__") or code.co_flags & (
        inspect.CO_VARARGS | inspect.CO_VARKEYWORDS
    ):
        return False
    taken = len(dependant.dependencies) + (dependant.request_param_name is not None)
    return code.co_argcount + code.co_kwonlyargcount == taken and all(
        _plain(sub) for sub in dependant.dependencies
    )


def _calls(dependants: Sequence[Dependant]) -> Iterator[object]:
    for dependant in dependants:
        yield dependant.call
        yield from _calls(dependant.dependencies)


def _as_matched(dependant: Dependant, str_params: Collection[str]) -> list[tuple[str, str]]:
    """The path parameters FastAPI would pass on as the route matched them, as (argument name,
    key in the request's `path_params`): a plain `str` (no constraint, no `Path(...)` metadata)
    whose segment the route converts to a str (`str_params`: starlette's `str` and `path`
    convertors, `str(value)`). FastAPI reads each one with `request_params_to_args`, and
    validating a str as a str gives it back; that read cost ~46 K instructions per request
    for GET /sessions/{id}'s one parameter (valgrind, CPython 3.11), for nothing. A parameter
    with an alias is read by it (`get_validation_alias`: the validation alias, else the alias)."""
    return [
        (field.name, key)
        for field in dependant.path_params
        if field.field_info.annotation is str
        and not field.field_info.metadata
        and (key := field.validation_alias or field.alias) in str_params
    ]


def _infallible(dependant: Dependant) -> bool:
    """Whether FastAPI can refuse no request reaching this route for its parameters (those it
    still reads: the flat dependant's)."""
    return not (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    )


class _Step(NamedTuple):
    """One call of the plan: `call(**{request_name: request, name: values[i] ...})`."""

    call: Callable[..., Coroutine[Any, Any, Any]]
    request_name: str | None
    arguments: tuple[tuple[str, int], ...]  # (parameter, index of the step giving its value)


def _plan(leading: Sequence[Dependant]) -> tuple[list[_Step], list[int]]:
    """The calls of `leading` and their dependencies in FastAPI's order (each dependency's own
    first, depth first, in declaration order), each call once as FastAPI's per-request cache
    makes it, and which step gives each of `leading`'s values."""
    steps: list[_Step] = []
    index: dict[object, int] = {}

    def visit(dependant: Dependant) -> int:
        known = index.get(dependant.call)
        if known is not None:
            return known
        arguments = tuple((sub.name or "", visit(sub)) for sub in dependant.dependencies)
        steps.append(_Step(dependant.call, dependant.request_param_name, arguments))  # type: ignore[arg-type]
        index[dependant.call] = len(steps) - 1
        return index[dependant.call]

    return steps, [visit(dependant) for dependant in leading]


class Flat(NamedTuple):
    """A route's flattened dependant, and for a route FastAPI may find malformed after calling
    its dependencies, the call of those dependencies alone (`FunctionRoute`)."""

    dependant: Dependant
    before_refusing: Callable[[Request], Coroutine[Any, Any, Any]] | None


def flattened(dependant: Dependant, str_params: Collection[str] = ()) -> Flat | None:
    """The dependant to serve the route with (see the module docstring), or None for the
    route's own (no leading plain dependency, or only one where one must stay). `str_params`:
    the route's path parameters its path converts to a str (`FunctionRoute`); when all its
    dependencies are plain, those of them the endpoint takes as a plain `str` are passed from
    the request's `path_params` as matched (`_as_matched`)."""
    leading: list[Dependant] = []
    for sub in dependant.dependencies:
        if not _plain(sub):
            break
        leading.append(sub)
    rest = dependant.dependencies[len(leading) :]
    if not leading:
        return None
    steps, results = _plan(leading)
    if any(call in {step.call for step in steps} for call in _calls(rest)):
        return None  # shared with a dependency FastAPI resolves: left to its cache
    direct = not rest
    if not direct and len(steps) == 1:
        return None  # one dependency in place of one: nothing gained
    names = [sub.name or "" for sub in leading]
    endpoint = dependant.call
    assert endpoint is not None
    request_name = dependant.request_param_name or _REQUEST

    async def resolved(request: Request) -> list[Any]:
        values: list[Any] = []
        for call, request_as, arguments in steps:
            kwargs = {name: values[i] for name, i in arguments}
            if request_as is not None:
                kwargs[request_as] = request
            values.append(await call(**kwargs))
        return [values[i] for i in results]

    matched = _as_matched(dependant, str_params) if direct else []
    taken = {name for name, _ in matched}

    @functools.wraps(endpoint)
    async def call(**values: Any) -> Any:
        if direct:
            request: Request = values[request_name]
            request.scope[_CALLED] = True
            if matched:
                path_params = request.path_params
                for name, key in matched:
                    values[name] = path_params[key]
            found = await resolved(request)
            if dependant.request_param_name is None:
                del values[_REQUEST]
        else:
            found = values.pop(_RESOLVED)
        values.update(zip(names, found, strict=True))
        return await endpoint(**values)

    if direct:
        flat = replace(
            dependant,
            path_params=[field for field in dependant.path_params if field.name not in taken],
            dependencies=[],
            call=call,
            request_param_name=request_name,
        )
        return Flat(flat, None if _infallible(flat) else resolved)
    fused = Dependant(call=resolved, name=_RESOLVED, request_param_name="request",
                      path=dependant.path)  # fmt: skip
    return Flat(replace(dependant, dependencies=[fused, *rest], call=call), None)


class Lean(NamedTuple):
    """A flat direct route's dependant without its JSON body and optional headers, for requests
    that send none of those headers and a body its model accepts as JSON (module docstring)."""

    dependant: Dependant
    model: type[BaseModel]
    headers: frozenset[bytes]  # the optional headers' names as ASGI has them (lowercase)

    async def body_of(self, request: Request) -> BaseModel | None:
        """The request's body as the model, or None when FastAPI's path must serve it."""
        scope = request.scope
        if MAX_BODY_SIZE_SCOPE_KEY in scope:
            return None  # a body limit's errors are FastAPI's to answer
        content_type = None
        for name, value in scope["headers"]:
            if name in self.headers:
                return None
            if content_type is None and name == b"content-type":
                content_type = value
        if content_type != _JSON:
            return None
        try:
            body = await request.body()
        except Exception:
            # FastAPI's read then fails too (starlette: "Stream consumed"), a 400 as FastAPI
            # answers any failed read (a client gone: ClientDisconnect) without a body limit.
            return None
        try:
            return self.model.model_validate_json(body)
        except ValidationError:
            return None


def lean(flat: Dependant) -> Lean | None:
    """The lean form of a flattened direct dependant (no dependencies left), or None when the
    route's body is not one `same_from_json` model or FastAPI could refuse another parameter."""
    if flat.dependencies or len(flat.body_params) != 1 or flat.call is None:
        return None
    (field,) = flat.body_params
    info = field.field_info
    model = info.annotation
    if not (
        type(info) is params.Body
        and not info.embed
        and not info.metadata
        and info.is_required()
        and isinstance(model, type)
        and issubclass(model, BaseModel)
        and getattr(model, "same_from_json", False) is True
    ):
        return None
    rest = replace(flat, body_params=[], header_params=[])
    if not _infallible(rest):
        return None
    headers: set[bytes] = set()
    for header in flat.header_params:
        hinfo = header.field_info
        if not (
            type(hinfo) is params.Header
            and not hinfo.is_required()
            and header.default is None
            and isinstance(hinfo.validation_alias, str | None)  # FastAPI sets the alias
        ):
            return None
        headers.update(alias.lower().encode("latin-1") for _, alias in _get_param_aliases(header))
    absent = dict.fromkeys(header.name for header in flat.header_params)
    body_name = field.name
    request_name = flat.request_param_name
    assert request_name is not None  # a flat direct dependant takes the request
    with_body = flat.call

    @functools.wraps(with_body)
    async def call(**values: Any) -> Any:
        values.update(absent)
        values[body_name] = values[request_name].scope.pop(_BODY)
        return await with_body(**values)

    return Lean(replace(rest, call=call), model, frozenset(headers))


class FunctionRoute(APIRoute):
    """A route served with its `flattened` dependant while the app overrides no dependency."""

    def get_route_handler(self) -> Handler:
        own = super().get_route_handler()
        # starlette's `str` and `path` convertors give the segment as a str (`str(value)`).
        as_str = {
            name
            for name, convertor in self.param_convertors.items()
            if type(convertor) in (StringConvertor, PathConvertor)
        }
        flat = flattened(self.dependant, as_str)
        if flat is None or not inspect.iscoroutinefunction(self.dependant.call):
            return own
        dependant = self.dependant
        self.dependant = flat.dependant
        try:
            fast = super().get_route_handler()
        finally:
            self.dependant = dependant
        provider = self.dependency_overrides_provider
        before_refusing = flat.before_refusing
        lean_route = None if self._embed_body_fields else lean(flat.dependant)
        if lean_route is not None:
            body_field = self.body_field
            self.dependant, self.body_field = lean_route.dependant, None
            try:
                lean_handler = super().get_route_handler()
            finally:
                self.dependant, self.body_field = dependant, body_field

        async def handler(request: Request) -> Response:
            if provider is not None and provider.dependency_overrides:
                return await own(request)
            if lean_route is not None:
                body = await lean_route.body_of(request)
                if body is not None:
                    request.scope[_BODY] = body
                    return await lean_handler(request)
            if before_refusing is None:
                return await fast(request)
            try:
                return await fast(request)
            except RequestValidationError as error:
                # FastAPI calls the dependencies after reading the body as JSON (a body that is
                # not JSON is refused first: its error's cause is the JSONDecodeError, fastapi
                # routing.py) and before validating the parameters and the body: a request
                # refused by a dependency (401) and malformed is answered the refusal.
                if not (request.scope.get(_CALLED) or isinstance(error.__cause__, JSONDecodeError)):
                    await before_refusing(request)
                raise

        return handler
