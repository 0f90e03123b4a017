"""What the functions log and measure behind `lucid serve`, read from the edge's output.

The template's ServiceName parameter reaches every line and metric; every line of a request
carries the id API Gateway (here the edge) gave it, answered as `apigw-requestid`, also when
many requests run at once on the edge's worker processes and invocation threads.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge

pytestmark = pytest.mark.e2e

SERVICE = "lucid-e2e-observed"
REQUESTS = 24


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    """The template served with ServiceName overridden. The shell's variables win over the
    template's (README, Configuration), and an in-process edge of an earlier test exports the
    template's SERVICE_NAME into this process: the edge must not inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SERVICE_NAME", "POWERTOOLS_SERVICE_NAME"):
            patch.delenv(name, raising=False)
        with subprocess_edge({}, {"ServiceName": SERVICE}) as running:
            yield running


def _json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _all_at_once(edge: SubprocessEdge, path: str, token: bool = False) -> list[str]:
    """`REQUESTS` GETs at once, each on a new connection (with a distinct malformed bearer token
    when `token`, so no cached decision answers); their apigw-requestid values."""

    def one(i: int) -> httpx.Response:
        headers = {"Connection": "close"}
        if token:
            headers["Authorization"] = f"Bearer malformed-{i}"
        with edge.client(headers=headers) as client:
            return client.get(path)

    with ThreadPoolExecutor(REQUESTS) as pool:
        responses = list(pool.map(one, range(REQUESTS)))
    return [r.headers["apigw-requestid"] for r in responses]


@pytest.mark.usefixtures("redis_client")
def test_each_line_carries_its_own_request_id_under_concurrency(edge: SubprocessEdge) -> None:
    # GIVEN requests that log twice in the proxy function (the problem, then the access line:
    # no backend is configured) and once in the authorizer (a malformed token is denied)
    proxied = _all_at_once(edge, "/chain/info")
    denied = _all_at_once(edge, "/users/me", token=True)
    # (the edge's access lines, one per request in the template's Format, are not the functions')
    lines = [
        line
        for line in _json_lines(edge.output())
        if "_aws" not in line and "requestId" not in line
    ]
    by_request = Counter(line.get("correlation_id") for line in lines)
    # THEN each request's lines carry its id, and no line carries another request's
    assert {request_id: by_request[request_id] for request_id in proxied} == dict.fromkeys(
        proxied, 2
    )
    assert {request_id: by_request[request_id] for request_id in denied} == dict.fromkeys(denied, 1)
    # AND the template's ServiceName names the service on every line
    assert {line["service"] for line in lines} == {SERVICE}


def test_the_service_name_and_cold_start_reach_the_metrics(edge: SubprocessEdge) -> None:
    with edge.client() as client:
        assert client.get("/health").status_code == 200
    metrics = [line for line in _json_lines(edge.output()) if "_aws" in line]
    assert metrics
    assert {line["service"] for line in metrics} == {SERVICE}
    cold_starts = {line["function_name"] for line in metrics if "ColdStart" in line}
    assert "MetaFunction" in cold_starts
