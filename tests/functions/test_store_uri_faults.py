"""A store URI its driver refuses: a fresh function starts, answers 503 problem+json naming the
store on each route that needs it, and logs one ERROR line naming the variable.

Through the real Mangum handlers, invoked with payload 2.0 events, each case in a fresh process
(a Lambda instance cold-starting with that environment): the test session's own process-wide
clients stay untouched. The other store is the session's real Redis or in-memory MongoDB.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.utils.functions import run_fresh_instance

# Cold-starts the auth and meta functions, then calls GET /auth/status (it needs Redis and
# MongoDB) twice and the meta function's GET /health (no store) and GET /meta/health.
FRESH_INSTANCE = """
import json
from tests.utils.events import http_event
from tests.utils.functions import load_handler
auth, meta = load_handler("auth"), load_handler("meta")
results = [auth(http_event("GET", "/auth/status"), None) for _ in range(2)]
results += [meta(http_event("GET", path), None) for path in ("/health", "/meta/health")]
print("RESULTS " + json.dumps(results))
"""

STORE_NAMES = {"redis": "Redis", "mongodb": "MongoDB"}


def _run(setting: str, uri: str) -> tuple[list[dict[str, Any]], str]:
    done = run_fresh_instance(FRESH_INSTANCE, {setting: uri})
    marker = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS "))
    results: list[dict[str, Any]] = json.loads(marker.removeprefix("RESULTS "))
    return results, done.stdout + done.stderr


def _log_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "level" in record:
                lines.append(record)
    return lines


@pytest.mark.parametrize(
    ("setting", "uri", "store", "error", "hidden"),
    [
        # A port pymongo cannot read ("bad"): its ValueError.
        ("MONGODB_URI", "mongodb://:bad", "mongodb", "ValueError", ":bad"),
        # An unescaped "@" in the password.
        ("MONGODB_URI", "mongodb://lu:hunter2@x@127.0.0.1:1/l", "mongodb", "InvalidURI", "hunter2"),
        # A port that is not a number: redis-py's message quotes it.
        ("REDIS_URI", "redis://host:notaport", "redis", "ValueError", "notaport"),
        ("REDIS_URI", "http://lucid:hunter2@127.0.0.1:1/0", "redis", "ValueError", "hunter2"),
    ],
)
def test_a_function_whose_store_uri_is_refused_answers_503_naming_the_store(
    setting: str, uri: str, store: str, error: str, hidden: str
) -> None:
    # GIVEN fresh auth and meta functions whose store URI its driver refuses
    # WHEN routes that need the store, and routes that do not, are invoked
    results, output = _run(setting, uri)
    first, second, health, readiness = results
    # THEN each call of a route that needs it is a 503 problem+json naming the store
    for result in (first, second):
        assert result["statusCode"] == 503
        assert result["headers"]["content-type"] == "application/problem+json"
        body = json.loads(result["body"])
        assert body["type"] == "https://lucid.dev/problems/store-unavailable"
        assert body["store"] == store
        assert body["detail"] == (
            f"{STORE_NAMES[store]} is unavailable to this function: its connection settings "
            "are not usable (the function's log says which)"
        )
        assert body["status"] == 503
        assert "Retry-After" not in result["headers"]
    # AND the cold start succeeded: a route without a store answers, /meta/health names it
    assert health["statusCode"] == 200
    assert readiness["statusCode"] == 503
    assert json.loads(readiness["body"])["failing"] == [store]
    # AND the function logged one ERROR line, naming the variable and the driver's error class
    errors = [line for line in _log_lines(output) if line["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0]["setting"] == setting
    assert errors[0]["error"] == error
    assert errors[0]["message"] == (
        f"{setting} is not usable: its driver refuses it ({error}): check the scheme, host and "
        "port, and that the user name and password are percent-escaped"
    )
    assert "Traceback" not in output
    # AND nothing of the URI is in the answers or the log
    assert hidden not in output
    assert all(hidden not in result["body"] for result in results)
