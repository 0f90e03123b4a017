"""An authorizer invocation that fails unexpectedly leaves a JSON line with the request's id.

An exception escaping a handler reaches the Lambda runtime, which reports it as plain text
with its own request id only (awslambdaric/bootstrap.py), and API Gateway answers 500: without a
line of ours, nothing in the authorizer's log group joins that failure to the access line's
`requestId` (`tests.utils.logs.lambda_runtime_output` sets the runtime's root handler up).
"""

from __future__ import annotations

import json

import pytest
import redis

from lucid_edge.local import free_port
from tests.functions.authorizer.test_authorizer import SID, _token
from tests.utils.auth_flow import authorizer_event
from tests.utils.events import lambda_context
from tests.utils.functions import load_handler, run_fresh_instance
from tests.utils.logs import lambda_runtime_output

REVOKED = "lucid:local:revoked-sign-ins"  # lucid.store.keys, the revocations' Redis copy


def test_an_unexpected_failure_is_logged_as_json_with_the_request_id(
    redis_client: redis.Redis,
) -> None:
    # GIVEN a Redis copy of the revocations holding, for the token's sign-in, something that is
    # not a time (a bug or a hand edit: the decision cannot be taken)
    redis_client.hset(REVOKED, SID, "not-a-time")
    token = _token()
    event = authorizer_event(f"Bearer {token}")
    try:
        # WHEN the real authorizer handler is invoked as Lambda invokes it
        with lambda_runtime_output() as output, pytest.raises(ValueError, match="not-a-time"):
            load_handler("authorizer")(event, lambda_context("AuthorizerFunction"))
    finally:
        redis_client.hdel(REVOKED, SID)
    # THEN the failure is one JSON line at ERROR with the request's id and the traceback, and
    # nothing went through the runtime's plain-text handler
    lines = output.getvalue().splitlines()
    assert all(line.startswith("{") for line in lines), lines
    (error,) = [json.loads(line) for line in lines if '"level":"ERROR"' in line]
    assert error["correlation_id"] == event["requestContext"]["requestId"]
    assert error["exception_name"] == "ValueError"
    assert "Traceback" in error["exception"]
    assert token.rsplit(".", 1)[1] not in output.getvalue()  # never the token's signature


# A fresh authorizer instance invoked once with a valid token, its output printed as the Lambda
# runtime's root handler writes it (`tests.utils.logs.lambda_runtime_output`).
FRESH_AUTHORIZER = """
from tests.functions.authorizer.test_authorizer import _token
from tests.utils.auth_flow import authorizer_event
from tests.utils.events import lambda_context
from lucid_edge.local import free_port
from tests.utils.functions import load_handler, run_fresh_instance
from tests.utils.logs import lambda_runtime_output
with lambda_runtime_output() as output:
    try:
        load_handler("authorizer")(authorizer_event("Bearer " + _token()), lambda_context("A"))
    except Exception as error:
        raised = type(error).__name__
print(output.getvalue(), end="")
print("raised:", raised)
"""


@pytest.mark.parametrize(
    ("env", "error_class"),
    [
        (
            {
                "REDIS_URI": "redis://127.0.0.1:{dead}/0",
                "MONGODB_URI": "mongodb://127.0.0.1:{dead}/",
            },
            "ServiceUnavailableError",
        ),
        ({"REDIS_URI": "redis://127.0.0.1:notaport/0"}, "StoreUnusableError"),
    ],
    ids=["stores-down", "store-uri-unusable"],
)
def test_an_expected_store_fault_is_one_line_with_its_class_and_no_traceback(
    env: dict[str, str], error_class: str
) -> None:
    # GIVEN a fresh authorizer whose stores cannot answer (nothing listens on their ports), or
    # whose REDIS_URI its driver refuses: faults the authorizer expects (API Gateway's 500)
    dead = str(free_port())
    # WHEN it is invoked with a valid token
    done = run_fresh_instance(FRESH_AUTHORIZER, {k: v.format(dead=dead) for k, v in env.items()})
    *output, raised = done.stdout.splitlines()
    assert raised == f"raised: {error_class}"
    lines = [line for line in map(json.loads, output) if "message" in line]  # not EMF lines
    # THEN the failure is one line "invocation failed" naming the error's class, without a
    # traceback (a known fault, not a bug), joined to the request by its correlation id
    (failed,) = [line for line in lines if line["message"] == "invocation failed"]
    assert failed["level"] == "ERROR"
    assert failed["error"] == error_class
    assert failed["correlation_id"]
    assert "exception" not in failed
    assert not any("Traceback" in json.dumps(line) for line in lines)
    # AND the neither-store-answers case is that line alone (the route and client on it)
    if error_class == "ServiceUnavailableError":
        assert [line["level"] for line in lines] == ["ERROR"]
        assert (failed["route"], failed["source_ip"]) == ("GET /users/me", "198.51.100.7")
