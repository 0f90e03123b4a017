"""A function's own OpenAPI document says what the function really answers: its errors as
problem+json whatever the route's media type, the request id and rate-limit headers, unique
operation ids (the gateway's document is built from these)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from lucid.web.app import create_app
from lucid.web.openapi import RATE_LIMIT_HEADERS, problems

router = APIRouter()
PROBLEM = "application/problem+json"


class Item(BaseModel):
    name: str


@router.post("/items", status_code=201, responses=problems(409))
async def create_item(body: Item) -> Item:
    return body


@router.get("/page", response_class=HTMLResponse, responses=problems(404))
async def page() -> str:
    return "<p>hi</p>"


async def both() -> Item:
    return Item(name="both")


router.add_api_route("/both", both, methods=["GET", "POST"])


def _document(*, rate_limited: bool) -> dict[str, Any]:
    return create_app("test", router, rate_limited=rate_limited).openapi()


def test_every_error_is_problem_json_even_on_an_html_route() -> None:
    document = _document(rate_limited=True)
    responses = document["paths"]["/page"]["get"]["responses"]
    for status in ("404", "429", "500", "503"):
        assert list(responses[status]["content"]) == [PROBLEM], status
        assert responses[status]["content"][PROBLEM]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    assert list(responses["200"]["content"]) == ["text/html"]  # success keeps its own type


def test_fastapi_s_422_is_our_validation_problem_and_an_unreadable_body_is_a_400() -> None:
    document = _document(rate_limited=False)
    responses = document["paths"]["/items"]["post"]["responses"]
    assert responses["422"]["content"][PROBLEM]["schema"] == {
        "$ref": "#/components/schemas/ValidationProblem"
    }
    assert "errors" in document["components"]["schemas"]["ValidationProblem"]["required"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "not UTF-8" in responses["400"]["description"]
    assert set(responses) == {"201", "400", "409", "422", "500"}  # not rate limited: no 429


def test_every_answer_of_a_rate_limited_function_lists_the_rate_limit_headers() -> None:
    responses = _document(rate_limited=True)["paths"]["/items"]["post"]["responses"]
    created = responses["201"]["headers"]
    assert created["X-Request-ID"]["required"] is True
    # the limiter adds its headers to every answer it decided, errors and 500s included
    assert set(responses) == {"201", "400", "409", "422", "429", "500", "503"}
    for status, response in responses.items():
        assert set(RATE_LIMIT_HEADERS) <= set(response["headers"]), status
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    # not a function that is not rate limited
    unlimited = _document(rate_limited=False)["paths"]["/items"]["post"]["responses"]
    assert not any("RateLimit" in response["headers"] for response in unlimited.values())
    # Starlette answers a 500 outside our middleware: no request id is promised there
    assert responses["500"]["headers"]["X-Request-ID"]["required"] is False


def test_operation_ids_are_the_routes_names_with_the_method_where_one_route_serves_several() -> (
    None
):
    # (FastAPI warns about one id for several methods; under -W error that warning would fail.)
    paths = _document(rate_limited=False)["paths"]
    assert paths["/items"]["post"]["operationId"] == "create_item"
    assert paths["/page"]["get"]["operationId"] == "page"
    assert paths["/both"]["get"]["operationId"] == "both_get"
    assert paths["/both"]["post"]["operationId"] == "both_post"
