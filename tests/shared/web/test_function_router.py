"""FunctionRouter: a function's routes are built once, and served as an included router would be."""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from lucid.web.app import FunctionRouter, create_app, lambda_handler
from lucid.web.openapi import problems
from tests.utils.events import http_event
from tests.utils.functions import load_module

FASTAPI_FUNCTIONS = ["auth", "users", "sessions", "proxy", "meta"]


class Item(BaseModel):
    name: str


def greeting() -> str:
    return "hello"


Greeting = Annotated[str, Depends(greeting)]


def _declare(router: APIRouter) -> APIRouter:
    @router.get("/items/{name}", responses=problems(404))
    async def read_item(name: str, word: Greeting) -> Item:
        """An item."""
        return Item(name=f"{word} {name}")

    @router.post("/items", status_code=201)
    async def create_item(item: Item) -> Item:
        """A new item."""
        return item

    return router


def _answer(handler: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    result = handler(http_event(method, path, **kwargs), None)
    return result["statusCode"], json.loads(result["body"])


def test_the_app_serves_the_routes_as_declared_without_building_them_again() -> None:
    # GIVEN routes declared on a FunctionRouter
    router = _declare(FunctionRouter(responses=problems(401)))
    declared = list(router.routes)
    # WHEN a function's app is made of it
    app = create_app("items", router)
    # THEN it serves those very route objects (an included APIRouter's are built again, per app,
    # at the first request)
    assert app.router.routes == declared
    assert all(isinstance(route, APIRoute) for route in app.router.routes)
    # ...and they answer
    handler = lambda_handler(app)
    assert _answer(handler, "GET", "/items/x") == (200, {"name": "hello x"})
    assert _answer(handler, "POST", "/items", body={"name": "y"}) == (201, {"name": "y"})


@pytest.mark.parametrize("rate_limited", [True, False])
def test_its_openapi_document_is_the_one_of_the_same_routes_included(rate_limited: bool) -> None:
    # GIVEN the same routes on a FunctionRouter and on a plain APIRouter (FastAPI's include)
    built = create_app(
        "items",
        _declare(FunctionRouter(responses=problems(401), rate_limited=rate_limited)),
        rate_limited=rate_limited,
    )
    included = create_app(
        "items", _declare(APIRouter(responses=problems(401))), rate_limited=rate_limited
    )
    # THEN both apps describe them alike: the function's errors, our operation ids, the router's
    # and the routes' own responses, in the same order
    assert json.dumps(built.openapi()) == json.dumps(included.openapi())
    operation = built.openapi()["paths"]["/items/{name}"]["get"]
    assert operation["operationId"] == "read_item"
    expected = {"200", "401", "404", "422", "500"} | ({"429", "503"} if rate_limited else set())
    assert set(operation["responses"]) == expected


def test_dependency_overrides_set_on_the_app_apply_to_its_routes() -> None:
    # GIVEN a function's app whose test overrides a dependency of a route
    app = create_app("items", _declare(FunctionRouter()))
    handler = lambda_handler(app)
    app.dependency_overrides[greeting] = lambda: "bye"
    try:
        # WHEN the route is called THEN the override answers
        assert _answer(handler, "GET", "/items/x") == (200, {"name": "bye x"})
    finally:
        app.dependency_overrides.clear()
    # ...and without it, the dependency itself
    assert _answer(handler, "GET", "/items/x") == (200, {"name": "hello x"})


def test_a_router_declared_for_another_kind_of_function_is_refused() -> None:
    # GIVEN routes declared with the rate-limited function's responses (429, 503)
    router = _declare(FunctionRouter(rate_limited=True))
    # WHEN an app without rate limits is made of them THEN it refuses, naming the mismatch
    with pytest.raises(ValueError, match="rate_limited=True"):
        create_app("items", router, rate_limited=False)


@pytest.mark.parametrize("function", FASTAPI_FUNCTIONS)
def test_every_function_serves_its_routes_as_they_were_built(function: str) -> None:
    # GIVEN a function's app as Lambda imports it
    app = load_module(function).app
    # THEN every route it serves is one its routes module built (none is rebuilt at the first
    # request of a cold start, as an included router's would be)
    assert app.router.routes
    assert all(isinstance(route, APIRoute) for route in app.router.routes)


def _string_annotations(dependant: Dependant, endpoint: bool) -> set[str]:
    """`module.callable(parameter)` for every annotation FastAPI finds as a string in the
    signatures it reads to build a route: the parameters of the endpoint and of every
    dependency, and the endpoint's return type (its response model)."""
    found: set[str] = set()
    if dependant.call is not None:
        signature = inspect.signature(dependant.call)
        named = {name: p.annotation for name, p in signature.parameters.items()}
        if endpoint:
            named["return"] = signature.return_annotation
        name = f"{dependant.call.__module__}.{getattr(dependant.call, '__qualname__', '?')}"
        found |= {f"{name}({key})" for key, value in named.items() if isinstance(value, str)}
    for sub in dependant.dependencies:
        found |= _string_annotations(sub, endpoint=False)
    return found


@pytest.mark.parametrize("function", FASTAPI_FUNCTIONS)
def test_every_function_declares_its_routes_with_evaluated_annotations(function: str) -> None:
    # GIVEN a function's app as Lambda imports it
    app = load_module(function).app
    # THEN no signature FastAPI read to build its routes had a string annotation, which FastAPI
    # compiles and evaluates again for every route that uses the callable: 115 of them in the
    # auth function's cold start, ~2.6 ms of CPU (README, "Cold start of the built artifact")
    # ...nor a model it validates or answers with, whose string annotations pydantic evaluates
    # when it builds the model at import
    found: set[str] = set()
    for route in app.router.routes:
        assert isinstance(route, APIRoute)
        found |= _string_annotations(route.dependant, endpoint=True)
        bodies = [field.field_info.annotation for field in route.dependant.body_params]
        for model in [route.response_model, *bodies]:
            if isinstance(model, type) and issubclass(model, BaseModel):
                found |= {
                    f"{model.__module__}.{model.__qualname__}.{name}"
                    for name, value in vars(model).get("__annotations__", {}).items()
                    if isinstance(value, str)
                }
    assert not found, f"postponed annotations (`from __future__ import annotations`?): {found}"
