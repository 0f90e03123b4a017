"""What libraries write in the authorizer's output never holds a token or a secret.

The authorizer's input is a bearer token and its configuration holds the JWT key and the store
URIs: a library's exception that quotes one and escapes the handler is logged with its traceback
("invocation failed") and reported by the Lambda runtime; a library's log line goes through the
root logger's handler (`lucid.observability`). Each is written masked (`lucid.log_masking`).
The real authorizer handler, under the Lambda runtime's root handler
(`tests.utils.logs.lambda_runtime_output`).
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import jwt.api_jws
import pytest

from lucid.log_masking import MASK
from tests.functions.authorizer.test_authorizer import KEY, _token
from tests.utils.auth_flow import authorizer_event
from tests.utils.events import lambda_context
from tests.utils.functions import load_handler, run_fresh_instance
from tests.utils.logs import lambda_runtime_output


def test_a_library_exception_quoting_the_token_is_logged_and_raised_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a PyJWT that fails on a token with an error quoting it (not one of its own errors,
    # which the authorizer turns into a Deny: this one escapes the handler)
    token = _token()

    def quoting(self: Any, value: Any) -> Any:
        raise ValueError(f"cannot load {value!r}")

    monkeypatch.setattr(jwt.api_jws.PyJWS, "_load", quoting)
    # WHEN the authorizer is invoked with it
    with lambda_runtime_output() as output, pytest.raises(Exception) as raised:  # noqa: PT011
        load_handler("authorizer")(
            authorizer_event(f"Bearer {token}"), lambda_context("AuthorizerFunction")
        )
    # THEN its ERROR line has the traceback, the class and the message, with the token masked
    (line,) = [json.loads(text) for text in output.getvalue().splitlines() if "ERROR" in text]
    assert line["message"] == "invocation failed"
    assert f"ValueError: cannot load '{MASK}'" in line["exception"]
    assert "quoting" in line["exception"]  # the traceback is kept
    # AND what the runtime reports (the exception raised to it) holds no token either
    reported = "".join(traceback.format_exception(raised.value))
    assert f"ValueError: cannot load '{MASK}'" in reported
    assert token not in output.getvalue() + reported


def test_a_library_line_quoting_a_secret_or_a_token_is_written_masked() -> None:
    token = _token()
    # WHEN a library logs the JWT key and a token (through the root logger's handler)
    with lambda_runtime_output() as output:
        logging.getLogger("redis.connection").warning("AUTH %s failed for %s", KEY, token)
    # THEN its line is JSON with both masked
    (line,) = [json.loads(text) for text in output.getvalue().splitlines() if text.startswith("{")]
    assert line["message"] == f"AUTH {MASK} failed for {MASK}"
    assert line["logger"] == "redis.connection"


# A fresh authorizer instance whose REDIS_URI redis-py refuses with urllib.parse's ValueError,
# which quotes the port: here "hunter2", the password of a URI that lost its "@".
FRESH_AUTHORIZER = """
from tests.functions.authorizer.test_authorizer import _token
from tests.utils.auth_flow import authorizer_event
from tests.utils.events import lambda_context
from tests.utils.functions import load_handler
from tests.utils.logs import lambda_runtime_output
import traceback
with lambda_runtime_output() as output:
    try:
        load_handler("authorizer")(authorizer_event("Bearer " + _token()), lambda_context("A"))
    except Exception as error:
        print("".join(traceback.format_exception(error)))
print(output.getvalue())
"""


def test_a_redis_uri_quoted_by_its_parser_never_reaches_the_authorizers_output() -> None:
    # GIVEN a fresh authorizer whose REDIS_URI holds its password where the port goes
    # WHEN it is invoked
    done = run_fresh_instance(FRESH_AUTHORIZER, {"REDIS_URI": "redis://127.0.0.1:hunter2/0"})
    # THEN it fails (no revocation check without Redis: API Gateway's 500), its log and what
    # the runtime reports naming the variable but never the password
    assert "StoreUnusableError" in done.stdout
    assert "REDIS_URI is not usable" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr
