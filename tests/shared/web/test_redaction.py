"""An escaped validation error is logged with its traceback but never with the input it echoes."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import APIRouter
from pydantic import BaseModel, TypeAdapter, ValidationError

from lucid.web.app import create_app, lambda_handler
from lucid.web.redaction import RedactedValidationError, RedactInputs, redacted
from tests.utils.events import http_event
from tests.utils.logs import logged_lines

router = APIRouter()
REFRESH_TOKEN = "rt_" + "Zq7" * 20  # what a sign-in answer carries
SIGNATURE = "0x" + "cd" * 65


class TokenPair(BaseModel):
    expires_in: int


class Stored(BaseModel):
    count: int


@router.get("/answer", response_model=TokenPair)
async def answer() -> dict[str, str]:
    # A response model refusing what the route built (FastAPI's ResponseValidationError).
    return {"expires_in": REFRESH_TOKEN}


@router.get("/parse")
async def parse() -> None:
    Stored.model_validate({"count": SIGNATURE})  # pydantic's ValidationError


@router.get("/wrapped")
async def wrapped() -> None:
    try:
        Stored.model_validate({"count": SIGNATURE})
    except ValueError as error:
        raise RuntimeError("the stored record is unreadable") from error


@router.get("/hidden")
async def hidden() -> None:
    try:
        Stored.model_validate({"count": SIGNATURE})
    except ValueError:
        raise RuntimeError("the stored record is unreadable") from None


handler = lambda_handler(create_app("test", router))


@pytest.mark.parametrize(
    ("path", "secret", "named"),
    [
        ("/answer", REFRESH_TOKEN, "response.expires_in"),
        ("/parse", SIGNATURE, "count"),
        ("/wrapped", SIGNATURE, "count"),
    ],
)
def test_an_escaped_validation_error_is_logged_without_the_input_it_echoes(
    path: str, secret: str, named: str
) -> None:
    # GIVEN a route whose validation of a value holding a token or a signature fails
    # WHEN the real Mangum handler serves it
    with logged_lines() as lines:
        result = handler(http_event("GET", path), None)  # type: ignore[arg-type]
    # THEN the caller gets the generic 500 problem
    assert result["statusCode"] == 500
    assert secret not in result["body"]
    # AND our JSON line keeps the traceback and what failed where, not the value
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert "Traceback" in error["exception"]
    assert named in error["exception"]
    assert "inputs not logged" in error["exception"]
    assert secret not in json.dumps(lines)


class Escaped(BaseException):
    """Not an `Exception`: Starlette's handlers let it through, only Mangum logs it."""


@router.get("/escaped")
async def escaped() -> None:
    try:
        await wrapped()  # a validation error, two links down the chain
    except RuntimeError as error:
        raise Escaped("the request could not be served") from error


def test_what_only_mangum_logs_is_redacted_too() -> None:
    # GIVEN a route whose validation error escapes past Starlette's handlers to Mangum
    # WHEN the real Mangum handler serves it
    with logged_lines() as lines:
        result = handler(http_event("GET", "/escaped"), None)  # type: ignore[arg-type]
    # THEN Mangum's line (routed into our JSON output) keeps the traceback, not the value
    assert result["statusCode"] == 500
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["message"] == "An error occurred running the application."
    assert RedactedValidationError.__name__ in error["exception"]
    assert "inputs not logged" in error["exception"]
    assert SIGNATURE not in json.dumps(lines)


def test_an_error_raised_from_none_is_logged_as_it_is() -> None:
    # GIVEN a route that hides the validation error it caught (`raise ... from None`)
    # WHEN it is served
    with logged_lines() as lines:
        handler(http_event("GET", "/hidden"), None)  # type: ignore[arg-type]
    # THEN its own exception is logged unchanged, and the hidden one not at all
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["exception_name"] == "RuntimeError"
    assert "the stored record is unreadable" in error["exception"]
    assert "validation" not in error["exception"].lower()


def test_a_cycle_in_the_chain_is_shown_once() -> None:
    # GIVEN a validation error and an exception that are each other's context
    try:
        Stored.model_validate({"count": SIGNATURE})
    except ValueError as caught:
        refused = caught
    outer = RuntimeError("outer")
    outer.__context__ = refused
    refused.__context__ = outer
    # WHEN a logger shows it
    shown = redacted(outer)
    # THEN the chain ends, without the input
    assert isinstance(shown.__cause__, RedactedValidationError)
    assert shown.__cause__.__cause__ is None
    assert SIGNATURE not in str(shown) + str(shown.__cause__)


def test_a_validation_error_quoted_in_the_message_is_redacted_there_too() -> None:
    # GIVEN asyncio's record of a task whose exception nobody retrieved: the task's repr in the
    # message holds the exception's text, the input included
    secret = "rt_" + "Qm4" * 10
    try:
        TypeAdapter(int).validate_python(secret)
    except ValidationError as error:
        caught = error
    record = logging.LogRecord(
        "asyncio", logging.ERROR, __file__, 1, "Task exception was never retrieved\nfuture: %s",
        (f"<Task finished exception={caught!r}>",), (ValidationError, caught, caught.__traceback__),
    )  # fmt: skip
    # WHEN the redaction filter sees it
    assert RedactInputs().filter(record)
    # THEN neither its message nor its exception holds the input
    assert secret not in record.getMessage()
    assert "inputs not logged" in record.getMessage()
    assert isinstance(record.exc_info and record.exc_info[1], RedactedValidationError)
