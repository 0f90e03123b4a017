"""Translation of every error into an RFC 9457 problem+json response, registered in one place."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from lucid.errors import (
    PROBLEM_CONTENT_TYPE,
    LucidError,
    ValidationFailedError,
)
from lucid.web import redaction

logger = logging.getLogger("lucid.errors")

_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
}


def problem_response(
    status: int,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem+json response with `body` (already RFC 9457 shaped)."""
    return Response(
        content=json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def error_response(error: LucidError, instance: str) -> Response:
    """The response for one of our errors raised while serving `instance`."""
    return problem_response(error.status, error.to_problem(instance), error.headers)


# A 422 lists at most this many errors, each field name cut to MAX_LOC_PART characters: a body
# of 400,000 unknown fields (4.7 MB, within Lambda's 6 MB event) made a 45 MB list otherwise,
# which Lambda refuses to return (API Gateway then answers a bare 500), and a field's name is
# the client's input, echoed back.
MAX_LISTED_ERRORS = 20
MAX_LOC_PART = 64


def _loc_part(part: object) -> str:
    text = str(part)
    return text if len(text) <= MAX_LOC_PART else text[: MAX_LOC_PART - 1] + "…"


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Never echo the rejected input back: it may hold a signature or a token.
    return [
        {
            "loc": [_loc_part(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors[:MAX_LISTED_ERRORS]
    ]


async def _on_lucid_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LucidError)
    if exc.status >= 500:
        # A handled degradation (backend down, breaker open, store unavailable): its cause is
        # logged once where it happens and counted; a warning per request would flood the logs.
        logger.info("request failed: %s %s", exc.slug, exc.detail)
    return error_response(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    every = exc.errors()
    errors = _validation_errors(every)
    fields = ", ".join(".".join(e["loc"][1:] or e["loc"]) for e in errors) or "request"
    extensions: dict[str, Any] = {"errors": errors}
    omitted = len(every) - len(errors)
    if omitted:
        fields += f" and {omitted} more"
        extensions["errors_omitted"] = omitted
    error = ValidationFailedError(f"invalid {fields}", extensions=extensions)
    return error_response(error, request.url.path)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    title = _STATUS_TITLES.get(status, "Error")
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": exc.detail if isinstance(exc.detail, str) else title,
        "instance": request.url.path,
    }
    return problem_response(status, body, exc.headers)


# Set on an exception `_on_unexpected` logged. Starlette's ServerErrorMiddleware raises it again
# once our handler has answered ("We always continue to raise the exception", starlette
# middleware/errors.py), and Mangum's `HTTPCycle.run` logs whatever reaches it on `mangum.http`
# (mangum protocols/http.py): one failure, two error lines, unless that second record is dropped.
_LOGGED = "_lucid_logged"


class LoggedOnce(logging.Filter):
    """Drops a record of an exception our 500 handler has logged already."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (exc_info and getattr(exc_info[1], _LOGGED, False))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error while serving %s %s", request.method, request.url.path)
    # An exception class that refuses attributes is logged twice rather than answered badly.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _LOGGED, True)
    return unexpected_error_response(request.url.path)


def unexpected_error_response(instance: str) -> Response:
    """The 500 problem for an error nobody expected while serving `instance` (no details)."""
    return error_response(LucidError("the server could not complete the request"), instance)


def install_problem_handlers(app: FastAPI) -> None:
    """Register the translation of every error class into problem+json on `app`."""
    redaction.install()  # an escaped validation error is logged without the input it echoes
    mangum = logging.getLogger("mangum.http")
    if not any(isinstance(f, LoggedOnce) for f in mangum.filters):
        # First: the redaction filter swaps a record's exception for an unmarked stand-in.
        mangum.filters.insert(0, LoggedOnce())
    app.add_exception_handler(LucidError, _on_lucid_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
