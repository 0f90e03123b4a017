"""Every line a function writes in Lambda is JSON with the request's correlation id, a library's
warning included, once, at the configured level, without the input a validation error echoes.

Each test runs a real Mangum handler in a fresh Python process that first sets up the root logger
as the Lambda Python runtime does before it imports the function (awslambdaric/bootstrap.py
`_setup_logging`: a `LambdaLoggerHandler` with a `LambdaLoggerFilter`, the text format), invokes
it with a real API Gateway payload 2.0 event and reads every line the process wrote, stdout and
stderr. The route makes the libraries log as they do in production: asyncio for real (a task's
exception nobody retrieved, a pydantic ValidationError echoing a secret), urllib3 for real (a
retried connection refused on 127.0.0.1), pymongo for real (a `warnings.warn` for a URI option it
ignores), and pymongo, redis, httpx and botocore through their own loggers' names, each library
imported first (botocore's and urllib3's NullHandlers in place).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lucid import observability
from tests.utils.logs import json_lines, logged_lines

ROOT = Path(__file__).resolve().parents[2]
SECRET = "rt_" + "Zk7" * 10  # what a validation error or a debug line could echo

SCRIPT = """
import json, logging, sys

class LambdaLoggerFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = "8f5b4c1e-runtime-request-id"
        return True

class LambdaLoggerHandler(logging.Handler):
    def emit(self, record):
        sys.stdout.write(self.format(record))

runtime = LambdaLoggerHandler()
runtime.setFormatter(logging.Formatter(
    "[%(levelname)s]\\t%(asctime)s.%(msecs)03dZ\\t%(aws_request_id)s\\t%(message)s\\n"))
runtime.addFilter(LambdaLoggerFilter())
logging.getLogger().addHandler(runtime)

import asyncio, gc
import botocore, httpx, pymongo, redis, urllib3
from fastapi import APIRouter
from pydantic import TypeAdapter
from lucid import observability
from lucid.web.app import create_app, lambda_handler
from tests.utils.events import http_event, lambda_context

SECRET = sys.argv[1]
router = APIRouter()

async def validate() -> None:
    TypeAdapter(int).validate_python(SECRET)

@router.get("/libraries")
async def libraries() -> dict[str, str]:
    task = asyncio.ensure_future(validate())
    await asyncio.sleep(0)
    del task
    gc.collect()  # asyncio: "Task exception was never retrieved", on the `asyncio` logger
    pool = urllib3.HTTPConnectionPool("127.0.0.1", 1, retries=urllib3.Retry(1, backoff_factor=0))
    try:
        pool.request("GET", "/")  # urllib3.connectionpool: "Retrying (...) after connection broken"
    except urllib3.exceptions.MaxRetryError:
        pass
    pymongo.MongoClient("mongodb://127.0.0.1:1/?tls=maybe", connect=False)  # warnings.warn
    logging.getLogger("pymongo.serverSelection").warning("pymongo: no server selected")
    logging.getLogger("redis.connection").warning("redis: connection reset")
    logging.getLogger("httpx").warning("httpx: backend slow")
    logging.getLogger("botocore.credentials").warning("botocore: credentials refresh failed")
    logging.getLogger("httpx").info("HTTP Request: GET http://backend/ 200 OK")
    logging.getLogger("botocore.parsers").debug("Response body: %s", SECRET)
    observability.logger.warning("powertools: service logger")
    logging.getLogger("lucid.test").warning("lucid: layer logger")
    return {"status": "ok"}

handler = lambda_handler(create_app("libraries", router, rate_limited=False))
event = http_event("GET", "/libraries")
result = handler(event, lambda_context("LibrariesFunction"))
sys.stderr.write(json.dumps({"RESULT": result["statusCode"],
                             "REQUEST": event["requestContext"]["requestId"]}) + "\\n")
"""

WARNINGS = {
    "pymongo.serverSelection": "pymongo: no server selected",
    "redis.connection": "redis: connection reset",
    "httpx": "httpx: backend slow",
    "botocore.credentials": "botocore: credentials refresh failed",
}


def run_function(log_level: str) -> tuple[int, str, list[dict[str, Any]], str]:
    """(status, API Gateway request id, every other line parsed, all the output)."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, SECRET],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": log_level},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output = done.stdout + done.stderr
    objects = json_lines([line for line in output.splitlines() if line.strip()])
    (outcome,) = [line for line in objects if "RESULT" in line]
    return (
        outcome["RESULT"],
        outcome["REQUEST"],
        [line for line in objects if "RESULT" not in line and "_aws" not in line],
        output,
    )


def test_library_warnings_are_json_lines_with_the_correlation_id_once_each() -> None:
    # GIVEN a function whose route makes asyncio, urllib3, pymongo, redis, httpx and botocore log,
    # under the Lambda runtime's root handler, at the default level
    # WHEN a real API Gateway event invokes it
    status, request_id, lines, output = run_function("INFO")
    assert status == 200
    # THEN every line is JSON (checked while parsing) carrying the request's correlation id
    assert {line.get("correlation_id") for line in lines} == {request_id}
    by_message = {line["message"]: line for line in lines}
    # AND each library's warning is there exactly once, with the name of the logger that wrote it
    for name, message in WARNINGS.items():
        assert [line["message"] for line in lines].count(message) == 1
        assert by_message[message]["logger"] == name
        assert by_message[message]["level"] == "WARNING"
    (retry,) = [line for line in lines if line.get("logger") == "urllib3.connectionpool"]
    assert retry["message"].startswith("Retrying")
    (ignored,) = [line for line in lines if line.get("logger") == "py.warnings"]
    assert "UserWarning: The value of tls must be 'true' or 'false'" in ignored["message"]
    (lost,) = [line for line in lines if line.get("logger") == "asyncio"]
    assert lost["message"].startswith("Task exception was never retrieved")
    assert lost["level"] == "ERROR"
    # AND its traceback is inside the line, the validation error (also in the message, the task's
    # repr) without the input it echoed
    assert "RedactedValidationError" in lost["exception"]
    assert "inputs not logged" in lost["message"]
    assert SECRET not in output
    # AND Powertools' and the layer's own lines are written once, not again through the root
    assert [line["message"] for line in lines].count("powertools: service logger") == 1
    assert [line["message"] for line in lines].count("lucid: layer logger") == 1
    # AND a library's INFO and DEBUG lines stay out (per request; botocore's holds bodies)
    assert not any(line["message"].startswith("HTTP Request") for line in lines)


def test_the_configured_level_above_warning_holds_for_library_lines() -> None:
    # GIVEN the same function with LOG_LEVEL=ERROR
    # WHEN it is invoked
    status, request_id, lines, _ = run_function("ERROR")
    assert status == 200
    # THEN no library warning is written, and the asyncio error is, as JSON with the request's id
    assert not any(line.get("level") == "WARNING" for line in lines)
    assert [line.get("logger") for line in lines] == ["asyncio"]
    assert lines[0]["correlation_id"] == request_id


def test_the_root_handler_writes_only_what_no_other_handler_wrote() -> None:
    # GIVEN a library logger with no handler, one with only a NullHandler (botocore's, urllib3's
    # way of staying silent), and one with a handler of its own (the edge's `lucid_edge`)
    bare = logging.getLogger("lucid_test_library.child")
    quiet = logging.getLogger("lucid_test_quiet")
    quiet.addHandler(logging.NullHandler())
    handled = logging.getLogger("lucid_test_handled")
    own = io.StringIO()
    handled.addHandler(logging.StreamHandler(own))
    try:
        # WHEN each logs a warning
        with logged_lines() as lines:
            bare.warning("from a bare library")
            quiet.warning("from a quiet library")
            handled.warning("from a logger with a handler")
    finally:
        quiet.handlers.clear()
        handled.handlers.clear()
    # THEN the first two are written as JSON by the root handler, with their loggers' names
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("lucid_test_library.child", "from a bare library"),
        ("lucid_test_quiet", "from a quiet library"),
    ]
    # AND the third only by its own handler, once
    assert own.getvalue() == "from a logger with a handler\n"


class LambdaLoggerHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Named as the Lambda runtime's root handler (awslambdaric bootstrap)."""


def test_the_runtime_s_root_handler_gives_way_to_one_json_handler() -> None:
    # GIVEN the runtime's handler on the root logger beside ours
    root = logging.getLogger()
    runtime = LambdaLoggerHandler(io.StringIO())
    root.addHandler(runtime)
    try:
        # WHEN the layer takes the root logger (what its import does)
        taken = observability.take_root_logger()
    finally:
        root.removeHandler(runtime)
    # THEN the runtime's handler is gone and ours is there once, the same as before
    assert taken is observability.library_lines
    assert runtime not in root.handlers
    assert sum(isinstance(h, observability.LibraryLines) for h in root.handlers) == 1
