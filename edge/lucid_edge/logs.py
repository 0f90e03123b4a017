"""The edge's own log lines (not the access log): JSON, one object per line, with the request id.

The functions log through Powertools (`lucid.observability`): JSON with `correlation_id` set to
API Gateway's request id. What the edge itself logs (a function that raised, timed out or
answered something invalid; an authorizer that failed; uvicorn's complaints about a connection)
takes the same shape and the same key, so every line of one request - the access line's
`requestId`, the authorizer's and the function's `correlation_id`, the edge's own - carries the
one id the client got back as `apigw-requestid`. A traceback goes into the line's `exception`
field (as Powertools does) instead of spreading over lines of its own.

`request_id_scope(id)` sets the id for the code that handles one request: the ASGI server runs
each request in its own task, which a ContextVar follows.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

__all__ = ["EDGE_SERVICE", "JsonFormatter", "configure", "request_id_scope", "uvicorn_log_config"]

EDGE_SERVICE = "lucid-edge"
_request_id: ContextVar[str | None] = ContextVar("lucid_edge_request_id", default=None)


@contextmanager
def request_id_scope(request_id: str) -> Iterator[None]:
    """Lines logged inside the block carry `request_id` as their `correlation_id`."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the keys Powertools' lines have."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "service": EDGE_SERVICE,
            "logger": record.name,
        }
        request_id = _request_id.get()
        if request_id is not None:
            line["correlation_id"] = request_id
        if record.exc_info:
            line["exception_name"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send the `lucid_edge.*` loggers of a worker process to stdout as JSON (idempotent).
    Records still propagate: a worker's root logger has no handler, and where one has (pytest's
    log capture), it keeps seeing them."""
    logger = logging.getLogger("lucid_edge")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)


def uvicorn_log_config(level: str = "warning") -> dict[str, Any]:
    """uvicorn's `log_config`: its own lines as JSON on stdout, like the edge's."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            name: {"handlers": ["json"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
