"""The access line names the Lambda request id of the invocation that answered it.

Lambda's own lines (START, END, REPORT, "Task timed out after ...") carry the invocation's
request id, never API Gateway's: a request whose function timed out or crashed before logging
has no line with its `correlation_id` in the function's log group. The template's access line
carries `$context.awsEndpointRequestId` ("The AWS endpoint's request ID from the x-amz-request-id
or x-amzn-requestId header", http-api-logging-variables.html; Lambda's Invoke answers the
invocation's request id there) as `integrationRequestId`, and the edge writes its own
invocation's id in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge
from tests.e2e.test_edge_access_log import _output_with

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    with subprocess_edge({}) as running:
        yield running


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_the_access_line_names_the_functions_lambda_request_id(edge: SubprocessEdge) -> None:
    # GIVEN a request a function answered, one no route matched and one refused before the
    # authorizer (no bearer token)
    ids = {}
    with edge.client() as client:
        for path in ("/health", "/nowhere", "/users/me"):
            ids[path] = client.get(path).headers["apigw-requestid"]
    lines = _lines(_output_with(edge, list(ids.values())))
    access = {line["requestId"]: line for line in lines if "requestId" in line}
    # THEN the answered request's access line names the invocation's Lambda request id, the
    # `function_request_id` of the function's own lines of that request
    (function_line,) = [
        line
        for line in lines
        if line.get("correlation_id") == ids["/health"] and line.get("message") == "request"
    ]
    lambda_request_id = access[ids["/health"]]["integrationRequestId"]
    assert lambda_request_id == function_line["function_request_id"]
    assert lambda_request_id != ids["/health"]
    # AND where no function ran, it is "-"
    assert access[ids["/nowhere"]]["integrationRequestId"] == "-"
    assert access[ids["/users/me"]]["integrationRequestId"] == "-"
