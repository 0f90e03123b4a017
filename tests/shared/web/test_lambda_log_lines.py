"""Every line a function writes in Lambda is JSON with the request's correlation id, also when a
route raises.

The Python runtime gives the root logger a handler of its own before it imports the function
(aws-lambda-python-runtime-interface-client, awslambdaric/bootstrap.py `_setup_logging`: with
the default text log format, `[%(levelname)s]\\t%(asctime)s.%(msecs)03dZ\\t%(aws_request_id)s\\t
%(message)s\\n`, root level left at WARNING unless AWS_LAMBDA_LOG_LEVEL is set). A library logger
that propagates to the root writes through it: plain text, the traceback on lines of its own
(one CloudWatch event, not JSON), and no `correlation_id` to join it to the request's other lines.
Here that handler is set up as the runtime sets it, on the stream the functions' lines go to.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter

from lucid.observability import logger
from lucid.web.app import create_app, lambda_handler
from tests.utils.events import http_event, lambda_context

router = APIRouter()


@router.get("/broken")
async def broken() -> None:
    raise RuntimeError("the backend answered nonsense")


@router.get("/fine")
async def fine() -> dict[str, str]:
    return {"status": "ok"}


# (typed loosely: Mangum declares its own LambdaContext protocol, the edge's context is Lambda's)
handler: Any = lambda_handler(create_app("test", router))


class _RequestId(logging.Filter):
    """The runtime's LambdaLoggerFilter: the invocation's request id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = "8f5b4c1e-runtime-request-id"
        return True


@pytest.fixture
def lambda_output() -> Iterator[io.StringIO]:
    """What CloudWatch Logs receives: the runtime's root handler and the functions' JSON lines
    writing to one stream (stdout in Lambda)."""
    stream = io.StringIO()
    runtime = logging.StreamHandler(stream)
    runtime.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    runtime.formatter.converter = time.gmtime  # type: ignore[union-attr]
    runtime.addFilter(_RequestId())
    root = logging.getLogger()
    level = root.level
    root.addHandler(runtime)
    root.setLevel(logging.WARNING)  # the runtime's, without AWS_LAMBDA_LOG_LEVEL
    functions = logger.registered_handler
    previous = functions.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        functions.setStream(previous)  # type: ignore[attr-defined]
        root.removeHandler(runtime)
        root.setLevel(level)


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
    assert errors
    assert all("Traceback" in error["exception"] for error in errors)
    assert any("the backend answered nonsense" in error["exception"] for error in errors)


def test_a_request_that_succeeds_adds_no_line_of_mangums(lambda_output: io.StringIO) -> None:
    # GIVEN a route that answers (Mangum logs "GET /fine 200" at INFO: our access line says it)
    handler(http_event("GET", "/fine"), lambda_context("test"))
    # THEN the lines are our access line and the EMF line, nothing else
    lines = [json.loads(line) for line in lambda_output.getvalue().splitlines()]
    assert [line.get("message") for line in lines if "_aws" not in line] == ["request"]
