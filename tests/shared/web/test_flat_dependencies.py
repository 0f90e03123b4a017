"""A FunctionRouter's request-only dependencies, called directly, answer as FastAPI's would."""

import dataclasses
import json
from typing import Annotated, Any

import fastapi
import pytest
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel

from lucid.errors import AuthenticationError, ForbiddenError
from lucid.web.app import FunctionRouter, create_app, lambda_handler
from lucid.web.flat_dependencies import _CALLED, flattened
from tests.utils.events import http_event


class Item(BaseModel):
    name: str


class Calls:
    """What the dependencies of one app were called with, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.refuse: Exception | None = None


def _app(calls: Calls) -> tuple[FastAPI, Any]:
    router = FunctionRouter(rate_limited=False)

    async def first(request: Request) -> str:
        calls.names.append("first")
        if calls.refuse is not None:
            raise calls.refuse
        return "one"

    async def second(request: Request) -> str:
        calls.names.append("second")
        return request.url.path

    async def shared(request: Request) -> str:
        calls.names.append("shared")
        return "shared"

    async def nested(value: Annotated[str, Depends(shared)]) -> str:
        calls.names.append("nested")
        return value + "!"

    def sync_nested(value: Annotated[str, Depends(shared)]) -> str:
        calls.names.append("sync")
        return value + "?"

    async def settings() -> str:
        calls.names.append("settings")
        return "s"

    async def store(request: Request, word: Annotated[str, Depends(settings)]) -> str:
        calls.names.append("store")
        return word + request.method

    first_dep = Annotated[str, Depends(first)]
    second_dep = Annotated[str, Depends(second)]

    @router.get("/plain/{name}")
    async def plain(name: str, one: first_dep, path: second_dep) -> Item:
        return Item(name=f"{one} {path} {name}")

    @router.get("/with-request/{name}")
    async def with_request(request: Request, one: first_dep, path: second_dep) -> Item:
        return Item(name=f"{one} {path} {request.method}")

    @router.post("/items")
    async def create(item: Item, one: first_dep, path: second_dep) -> Item:
        return Item(name=f"{one} {path} {item.name}")

    @router.get("/query")
    async def query(
        one: first_dep, path: second_dep, size: Annotated[int, Query(ge=1)] = 1
    ) -> Item:
        return Item(name=f"{one} {path} {size}")

    # `shared` needed by the route and again by another dependency: a plain one (/shared) or
    # one FastAPI resolves itself (/mixed)
    for path, needing in (("/shared", nested), ("/mixed", sync_nested)):

        async def twice(
            own: Annotated[str, Depends(shared)],
            one: first_dep,
            other: Annotated[str, Depends(needing)],
        ) -> Item:
            return Item(name=f"{own} {one} {other}")

        router.add_api_route(path, twice, methods=["GET"])

    @router.post("/stored")
    async def stored(
        item: Item,
        one: first_dep,
        kept: Annotated[str, Depends(store)],
        again: Annotated[str, Depends(settings)],
    ) -> Item:
        return Item(name=f"{one} {kept} {again} {item.name}")

    app = create_app("items", router, rate_limited=False)
    return app, lambda_handler(app)


def _answer(handler: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    result = handler(http_event(method, path, **kwargs), None)
    return result["statusCode"], json.loads(result["body"])


def test_the_routes_get_each_dependency_in_order_once() -> None:
    calls = Calls()
    _, handler = _app(calls)
    assert _answer(handler, "GET", "/plain/x") == (200, {"name": "one /plain/x x"})
    assert _answer(handler, "GET", "/with-request/x") == (200, {"name": "one /with-request/x GET"})
    assert _answer(handler, "POST", "/items", body={"name": "y"}) == (200, {"name": "one /items y"})
    assert _answer(handler, "GET", "/query", query="size=3") == (200, {"name": "one /query 3"})
    assert calls.names == ["first", "second"] * 4
    # a dependency also needed by another one is called once, before the other, as FastAPI does
    calls.names.clear()
    assert _answer(handler, "GET", "/shared") == (200, {"name": "shared one shared!"})
    assert calls.names == ["shared", "first", "nested"]
    # ...also when the other one is left to FastAPI (a plain `def`)
    calls.names.clear()
    assert _answer(handler, "GET", "/mixed") == (200, {"name": "shared one shared?"})
    assert calls.names == ["shared", "first", "sync"]
    # a dependency's own dependencies come first, each once
    calls.names.clear()
    assert _answer(handler, "POST", "/stored", body={"name": "y"}) == (
        200,
        {"name": "one sPOST s y"},
    )
    assert calls.names == ["first", "settings", "store"]


@pytest.mark.parametrize(
    ("refusal", "status"), [(AuthenticationError("no"), 401), (ForbiddenError("no"), 403)]
)
def test_a_refusing_dependency_answers_before_the_parameters_are_validated(
    refusal: Exception, status: int
) -> None:
    # GIVEN a dependency that refuses the caller
    calls = Calls()
    calls.refuse = refusal
    _, handler = _app(calls)
    # WHEN a request is also malformed (body, query) THEN the refusal answers, as FastAPI,
    # which solves dependencies before it validates parameters, answers it; the next
    # dependency is never called
    assert _answer(handler, "POST", "/items", body={"nom": "y"})[0] == status
    assert _answer(handler, "GET", "/query", query="size=0")[0] == status
    assert _answer(handler, "GET", "/plain/x")[0] == status
    assert calls.names == ["first"] * 3
    # ...but a body that is not JSON is refused before any dependency is called, as FastAPI
    # reads the body first
    calls.names.clear()
    not_json = http_event(
        "POST", "/items", body="{not json", headers={"content-type": "application/json"}
    )
    assert handler(not_json, None)["statusCode"] == 422
    assert calls.names == []
    # ...and a well-formed caller with a malformed request still gets the 422
    calls.refuse = None
    assert _answer(handler, "GET", "/query", query="size=0")[0] == 422


def test_an_override_on_the_app_replaces_a_dependency_as_fastapi_documents() -> None:
    calls = Calls()
    app, handler = _app(calls)
    first = next(
        sub.call
        for route in app.routes
        if getattr(route, "path", "") == "/plain/{name}"
        for sub in route.dependant.dependencies  # type: ignore[attr-defined]
        if sub.name == "one"
    )
    app.dependency_overrides[first] = lambda: "overridden"
    try:
        assert _answer(handler, "GET", "/plain/x") == (200, {"name": "overridden /plain/x x"})
        assert _answer(handler, "POST", "/items", body={"name": "y"})[1] == {
            "name": "overridden /items y"
        }
    finally:
        app.dependency_overrides.clear()
    assert calls.names == ["second", "second"]
    assert _answer(handler, "GET", "/plain/x") == (200, {"name": "one /plain/x x"})


def test_the_signed_in_routes_resolve_no_dependency_through_fastapi() -> None:
    # The point of it (issue 11): GET /users/me and GET /sessions/{id} take their caller and
    # repository without FastAPI's resolution, and so do POST (with the settings its idempotency
    # store needs when a key is sent) and PATCH /sessions.
    from tests.utils.functions import load_module

    users = load_module("users", "app").app
    sessions = load_module("sessions", "app").app

    def flat(app: FastAPI, path: str, method: str) -> list[str | None]:
        route = next(
            r
            for r in app.routes
            if getattr(r, "path", "") == path and method in r.methods  # type: ignore[attr-defined]
        )
        flat = flattened(route.dependant, route.param_convertors)  # type: ignore[attr-defined]
        assert flat is not None
        # ...nor any path parameter: the session id is passed as the route matched it
        assert flat.dependant.path_params == []
        return [sub.name for sub in flat.dependant.dependencies]

    assert flat(users, "/users/me", "GET") == []
    assert flat(sessions, "/sessions/{session_id}", "GET") == []
    assert flat(sessions, "/sessions", "POST") == []
    assert flat(sessions, "/sessions/{session_id}", "PATCH") == []


# The FastAPI release whose internals lucid.web.flat_dependencies was read against (its docstring
# lists them, with file and line).
PINNED_FASTAPI = "0.165.0"


def test_the_fastapi_internals_it_relies_on_are_those_it_was_written_for() -> None:
    """Fails when FastAPI moves: `lucid.web.flat_dependencies` builds routes from FastAPI's
    internals, read for FastAPI 0.165.0, and a change there could serve a route with a
    dependency FastAPI would have refused, or silently stop flattening. Read again the internals
    its docstring lists, then move PINNED_FASTAPI."""
    assert fastapi.__version__ == PINNED_FASTAPI, (
        f"FastAPI {fastapi.__version__} is installed; lucid.web.flat_dependencies was written "
        f"against {PINNED_FASTAPI}'s internals: read again those its docstring lists"
    )
    # Dependant's every field: `_plain` reads each by name to refuse what it cannot call itself,
    # so a field FastAPI adds may be a kind of parameter it does not know to refuse yet
    assert [field.name for field in dataclasses.fields(Dependant)] == [
        "path_params", "query_params", "header_params", "cookie_params", "body_params",
        "dependencies", "name", "call", "request_param_name", "websocket_param_name",
        "http_connection_param_name", "response_param_name", "background_tasks_param_name",
        "security_scopes_param_name", "own_oauth_scopes", "parent_oauth_scopes", "use_cache",
        "path", "scope", "concurrency",
    ]  # fmt: skip
    # A route of a FunctionRouter is served from the dependant `FunctionRoute` gives FastAPI
    # while it builds the handler (APIRoute.get_route_handler reads `self.dependant`): its plain
    # dependency is called by the flat dependant, which marks the request
    router = FunctionRouter(rate_limited=False)

    async def caller(request: Request) -> str:
        return request.method

    @router.get("/things/{name}")
    async def thing(request: Request, name: str, who: Annotated[str, Depends(caller)]) -> Item:
        return Item(name=f"{who} {name} {request.scope.get(_CALLED, False)}")

    handler = lambda_handler(create_app("things", router, rate_limited=False))
    assert _answer(handler, "GET", "/things/x") == (200, {"name": "GET x True"})
    # and a path parameter's field is read as pydantic's FieldInfo (`_infallible`)
    (route,) = router.routes
    (field,) = route.dependant.path_params  # type: ignore[attr-defined]
    assert (field.field_info.annotation, field.field_info.metadata) == (str, [])
    # ...and its request key as `request_params_to_args` reads it (`_as_matched`)
    assert (field.validation_alias, field.alias) == (None, "name")


def test_a_path_parameter_taken_as_matched_answers_as_fastapi_validating_it() -> None:
    # GIVEN routes whose only dependency is plain, with path parameters of every kind: those
    # the endpoint takes as a plain `str` of a str segment are passed as the route matched them
    # (`_as_matched`), the others FastAPI still reads and validates
    router = FunctionRouter(rate_limited=False)

    async def caller(request: Request) -> str:
        return request.method

    who_dep = Annotated[str, Depends(caller)]

    @router.get("/str/{name}")
    async def plain(name: str, who: who_dep) -> Item:
        return Item(name=f"{who} {name!r}")

    @router.get("/alias/{other}")
    async def aliased(name: Annotated[str, Path(alias="other")], who: who_dep) -> Item:
        return Item(name=f"{who} {name!r}")

    @router.get("/rest/{rest:path}")
    async def rest(rest: str, who: who_dep) -> Item:
        return Item(name=f"{who} {rest!r}")

    @router.get("/int/{n:int}")
    async def converted(n: str, who: who_dep) -> Item:  # an int segment: FastAPI refuses it (422)
        return Item(name=f"{who} {n!r}")

    @router.get("/pattern/{code}")
    async def pattern(code: Annotated[str, Path(pattern="^[a-f]+$")], who: who_dep) -> Item:
        return Item(name=f"{who} {code!r}")

    @router.get("/number/{n}/{name}")
    async def number(n: int, name: str, who: who_dep) -> Item:
        return Item(name=f"{who} {n!r} {name!r}")

    app = create_app("paths", router, rate_limited=False)
    handler = lambda_handler(app)
    requests = [
        "/str/x", "/str/caf%C3%A9", "/str/a%20b", "/alias/y", "/rest/a/b/c", "/int/5",
        "/pattern/abc", "/pattern/xyz", "/number/7/z", "/number/x/z",
    ]  # fmt: skip
    fast = [_answer(handler, "GET", path) for path in requests]
    # WHEN the same requests are served by FastAPI's own handlers (while the app overrides a
    # dependency: here one no route has)
    app.dependency_overrides[_answer] = lambda: None
    try:
        own = [_answer(handler, "GET", path) for path in requests]
    finally:
        app.dependency_overrides.clear()
    # THEN every answer is the same, a refusal included
    assert fast == own
    assert [status for status, _ in fast] == [200] * 5 + [422, 200, 422, 200, 422]
    assert fast[1] == (200, {"name": "GET 'café'"})
    assert fast[4] == (200, {"name": "GET 'a/b/c'"})
    # ...and the str parameters are not read by FastAPI on the flat routes
    read = {
        route.path: [  # type: ignore[attr-defined]
            field.name
            for field in flattened(
                route.dependant,  # type: ignore[attr-defined]
                {"name", "other", "rest", "code"},
            ).dependant.path_params  # type: ignore[union-attr]
        ]
        for route in router.routes
    }
    assert read == {
        "/str/{name}": [],
        "/alias/{other}": [],
        "/rest/{rest:path}": [],
        "/int/{n:int}": ["n"],
        "/pattern/{code}": ["code"],
        "/number/{n}/{name}": ["n"],
    }
