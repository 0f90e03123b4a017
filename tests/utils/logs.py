"""The JSON lines the functions log, as Lambda would send them to CloudWatch."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

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


class _RequestId(logging.Filter):
    """The Lambda runtime's LambdaLoggerFilter: the invocation's request id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = "8f5b4c1e-runtime-request-id"
        return True


@contextmanager
def lambda_runtime_output() -> Iterator[io.StringIO]:
    """What CloudWatch Logs receives in the block: the Python runtime's root handler and the
    functions' JSON lines writing to one stream (stdout in Lambda).

    The runtime gives the root logger its handler before it imports the function
    (aws-lambda-python-runtime-interface-client, awslambdaric/bootstrap.py `_setup_logging`:
    with the default text log format `[%(levelname)s]\\t%(asctime)s.%(msecs)03dZ\\t
    %(aws_request_id)s\\t%(message)s\\n`, root level left at WARNING unless AWS_LAMBDA_LOG_LEVEL
    is set): a logger that propagates to the root writes plain text through it."""
    stream = io.StringIO()
    runtime = logging.StreamHandler(stream)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    runtime.setFormatter(formatter)
    runtime.addFilter(_RequestId())
    root = logging.getLogger()
    level = root.level
    root.addHandler(runtime)
    root.setLevel(logging.WARNING)
    functions = logger.registered_handler
    previous = functions.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        functions.setStream(previous)  # type: ignore[attr-defined]
        root.removeHandler(runtime)
        root.setLevel(level)


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Each line a process wrote, as JSON; fails on the first that is not (plain text)."""
    objects = []
    for line in lines:
        try:
            objects.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a line the function wrote is not JSON: {line!r}")
    return objects
