"""The JSON lines the functions log, as Lambda would send them to CloudWatch."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lucid.observability import logger


@contextmanager
def logged_lines() -> Iterator[list[dict[str, Any]]]:
    """Every line the Powertools handler writes in the block (each formatted where it was logged,
    as in Lambda), parsed; the list fills as the block runs and is complete at its end."""
    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())
