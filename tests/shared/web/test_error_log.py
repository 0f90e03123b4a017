"""A failure is logged once, as JSON with the request's correlation id: what the process writes.

Starlette's ServerErrorMiddleware raises an exception again after our 500 handler has logged it,
and Mangum logs whatever reaches it on `mangum.http` ("An error occurred running the
application."), a logger that propagates to the root one: in Lambda the runtime's plain-text
handler (awslambdaric bootstrap `_setup_logging`), outside it Python's last-resort handler
(stderr). Each test runs a real Mangum handler in a fresh Python process, invokes it with a real
API Gateway payload 2.0 event and reads every line the process wrote, on stdout and stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import APIRouter

from lucid.web.app import create_app, lambda_handler
from tests.utils.events import http_event, lambda_context, reply_from
from tests.utils.logs import json_lines, logged_lines

ROOT = Path(__file__).resolve().parents[3]
SECRET = "sk_live_" + "Qx9" * 8  # what an exception's message may hold (a header, a record)

# The function, built and invoked in the child process. `ROOT_HANDLER` "lambda" installs what the
# Lambda runtime puts on the root logger before importing the handler (text format); "none" leaves
# the root logger as a local worker process has it.
SCRIPT = """
import json, logging, sys
if sys.argv[1] == "lambda":
    runtime = logging.StreamHandler(sys.stdout)
    runtime.setFormatter(logging.Formatter(
        "[%(levelname)s]\\t%(asctime)s.%(msecs)03dZ\\t%(message)s\\n", "%Y-%m-%dT%H:%M:%S"))
    logging.getLogger().addHandler(runtime)
from fastapi import APIRouter
from lucid.web.app import create_app, lambda_handler
from tests.utils.events import http_event, lambda_context

class Escaped(BaseException):
    '''Not an `Exception`: Starlette's handlers let it through to Mangum.'''

router = APIRouter()

@router.get("/bug")
async def bug() -> None:
    raise KeyError(sys.argv[3])

@router.get("/escape")
async def escape() -> None:
    raise Escaped(sys.argv[3])

handler = lambda_handler(create_app("failing", router, rate_limited=False))
event = http_event("GET", sys.argv[2])
result = handler(event, lambda_context("FailingFunction"))
sys.stderr.write(json.dumps({"RESULT": result["statusCode"],
                             "REQUEST": event["requestContext"]["requestId"]}) + "\\n")
"""


def run_function(root_handler: str, path: str) -> tuple[int, str, list[str]]:
    """(status, API Gateway request id, every other line the process wrote)."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, root_handler, path, SECRET],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    (outcome,) = [json.loads(line) for line in lines if line.startswith('{"RESULT"')]
    return (
        outcome["RESULT"],
        outcome["REQUEST"],
        [line for line in lines if not line.startswith('{"RESULT"')],
    )


@pytest.mark.parametrize("root_handler", ["lambda", "none"])
@pytest.mark.parametrize(
    ("path", "logger"),
    [
        ("/bug", "lucid.errors"),  # an Exception: our 500 handler logs it, Mangum sees it again
        ("/escape", "mangum.http"),  # a BaseException: past Starlette, only Mangum logs it
    ],
)
def test_a_failure_is_one_json_error_line_with_the_correlation_id(
    root_handler: str, path: str, logger: str
) -> None:
    # GIVEN a route that raises, behind the real Mangum handler
    # WHEN a real API Gateway event invokes it in a process of its own
    status, request_id, lines = run_function(root_handler, path)
    # THEN the caller gets a 500
    assert status == 500
    # AND every line the process wrote is JSON carrying the request's correlation id
    objects = json_lines(lines)
    assert objects
    assert {line.get("correlation_id") for line in objects} == {request_id}
    # AND exactly one of them is an error: the traceback, in a field of that one line
    (error,) = [line for line in objects if line.get("level") == "ERROR"]
    assert "Traceback (most recent call last)" in error["exception"]
    assert SECRET in error["exception"]  # the exception's own message: one line holds it, once
    assert sum(SECRET in line for line in lines) == 1
    assert error["location"].startswith("_on_unexpected" if logger == "lucid.errors" else "run")


router = APIRouter()


class UnmarkableError(Exception):
    """An exception class that refuses new attributes."""

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(name)


@router.get("/unmarkable")
async def unmarkable() -> None:
    raise UnmarkableError("refuses attributes")


def test_an_exception_that_refuses_attributes_still_gets_the_problem_answer() -> None:
    # GIVEN a route raising an exception that cannot be marked as logged
    handler = lambda_handler(create_app("test", router, rate_limited=False))
    # WHEN it is served
    with logged_lines() as lines:
        result = handler(http_event("GET", "/unmarkable"), lambda_context("test"))  # type: ignore[arg-type]
    # THEN the caller still gets the problem+json 500, and the error is logged
    reply = reply_from(result)
    assert reply.status == 500
    assert reply.headers["content-type"] == "application/problem+json"
    assert any(line["level"] == "ERROR" for line in lines)
