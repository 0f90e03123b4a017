"""Tracebacks without the values a validation error echoes.

pydantic's `ValidationError` and FastAPI's `ResponseValidationError` put each rejected value in
their message (`input_value='…'`, `'input': '…'`). One that escapes a route (a response model
refusing a sign-in answer, `model_validate` of a request's data) is logged with its traceback: by
our 500 handler, or by Mangum ("An error occurred running the application.") for an exception
Starlette's handlers let through (`lucid.observability` routes Mangum's loggers into our JSON
output; `lucid.web.problems` drops its second record of one our handler logged). Its message
could hold an access or refresh token, a signature or a password, so each such record's exception
is replaced by a stand-in that keeps the traceback, the class and, per error, the location, type
and message: never the input.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.exceptions import ValidationException
from pydantic import ValidationError

from lucid.log_masking import rewritten_chain, shown_cause
from lucid.observability import library_lines

__all__ = ["RedactInputs", "RedactedValidationError", "install"]

# The loggers that log an escaped exception with its traceback (lucid.web.problems, Mangum).
LOGGERS = ("lucid.errors", "mangum.http")


class RedactedValidationError(Exception):
    """Stands for a validation error in a logged traceback; its message holds no input."""


def _summary(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        details: list[Any] = error.errors(include_input=False, include_url=False)
    else:
        assert isinstance(error, ValidationException)
        details = list(error.errors())
    shown = "; ".join(
        f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg', '')} [{d.get('type', '')}]"
        for d in details
        if isinstance(d, dict)
    )
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    return f"{kind} ({len(details)} errors, inputs not logged): {shown}"


def _echoes_input(error: BaseException | None, seen: set[int]) -> bool:
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ValidationError | ValidationException):
            return True
        error = shown_cause(error)
    return False


def redacted(error: BaseException) -> BaseException:
    """`error` as a logger may show it: each validation error of its chain replaced by a
    `RedactedValidationError` with the same traceback; any other exception kept as it is (or
    copied, when its cause was replaced)."""

    def summary(link: BaseException) -> str | None:
        return _summary(link) if isinstance(link, ValidationError | ValidationException) else None

    return rewritten_chain(error, summary, RedactedValidationError)


class RedactInputs(logging.Filter):
    """Replaces a record's exception by `redacted(exception)` when its chain echoes input."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None and _echoes_input(exc_info[1], set()):
            shown = redacted(exc_info[1])
            record.exc_info = (type(shown), shown, shown.__traceback__)
            record.exc_text = None
            # asyncio's "Task exception was never retrieved" also puts the task's repr, the
            # exception's included, in the message (asyncio base_events
            # `default_exception_handler`): each validation error's text there is replaced too.
            message = original = record.getMessage()
            error: BaseException | None = exc_info[1]
            seen: set[int] = set()
            while error is not None and id(error) not in seen:
                seen.add(id(error))
                if isinstance(error, ValidationError | ValidationException):
                    for text in {repr(error), str(error)}:
                        message = message.replace(text, _summary(error))
                error = shown_cause(error)
            if message != original:
                record.msg, record.args = message, None
        return True


def install() -> None:
    """Add the filter to the loggers that log escaped exceptions and to the root logger's handler
    of every other library's lines (asyncio's "Task exception was never retrieved" shows the
    task's exception) (once each)."""
    for target in (*(logging.getLogger(name) for name in LOGGERS), library_lines):
        if not any(isinstance(f, RedactInputs) for f in target.filters):
            target.addFilter(RedactInputs())
