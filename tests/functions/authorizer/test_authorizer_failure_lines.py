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

from tests.functions.authorizer.test_authorizer import SID, _token
from tests.utils.auth_flow import authorizer_event
from tests.utils.events import lambda_context
from tests.utils.functions import load_handler
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
