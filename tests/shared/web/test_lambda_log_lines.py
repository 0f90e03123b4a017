"""Every line a function writes in Lambda is JSON with the request's correlation id, also when a
route raises.

The Python runtime gives the root logger a handler of its own (`tests.utils.logs.
lambda_runtime_output` sets it up as the runtime does): a library logger that propagates to the
root writes through it plain text, the traceback on lines of its own (one CloudWatch event, not
JSON), and no `correlation_id` to join it to the request's other lines.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter

from lucid.web.app import create_app, lambda_handler
from tests.utils.events import http_event, lambda_context
from tests.utils.logs import lambda_runtime_output

router = APIRouter()


@router.get("/broken")
async def broken() -> None:
    raise RuntimeError("the backend answered nonsense")


@router.get("/fine")
async def fine() -> dict[str, str]:
    return {"status": "ok"}


# (typed loosely: Mangum declares its own LambdaContext protocol, the edge's context is Lambda's)
handler: Any = lambda_handler(create_app("test", router))


@pytest.fixture
def lambda_output() -> Iterator[io.StringIO]:
    with lambda_runtime_output() as stream:
        yield stream


def test_a_raising_route_writes_only_json_lines_with_the_correlation_id(
    lambda_output: io.StringIO,
) -> None:
    # GIVEN a route that raises, served by the real Mangum handler as Lambda runs it
    event = http_event("GET", "/broken")
    # WHEN it is invoked
    result = handler(event, lambda_context("test"))
    # THEN the caller gets the 500 problem
    assert result["statusCode"] == 500
    # AND every line CloudWatch gets is one JSON object carrying the request's correlation id
    lines = lambda_output.getvalue().splitlines()
    assert lines
    for line in lines:
        assert line.startswith("{"), line
        parsed = json.loads(line)
        if "_aws" not in parsed:  # the EMF line carries it as metadata, checked below
            assert parsed["correlation_id"] == event["requestContext"]["requestId"], line
    # AND the exception is logged with its traceback, inside a line, not on lines of its own
    errors = [json.loads(line) for line in lines if '"level":"ERROR"' in line]
    assert len(errors) == 1  # ours: Mangum's second record of the same exception is dropped
    assert all("Traceback" in error["exception"] for error in errors)
    assert any("the backend answered nonsense" in error["exception"] for error in errors)


def test_a_request_that_succeeds_adds_no_line_of_mangums(lambda_output: io.StringIO) -> None:
    # GIVEN a route that answers (Mangum logs "GET /fine 200" at INFO: our access line says it)
    handler(http_event("GET", "/fine"), lambda_context("test"))
    # THEN the lines are our access line and the EMF line, nothing else
    lines = [json.loads(line) for line in lambda_output.getvalue().splitlines()]
    assert [line.get("message") for line in lines if "_aws" not in line] == ["request"]
