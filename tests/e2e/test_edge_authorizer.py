"""Lambda REQUEST authorizers through real HTTP: 401/403/500, context, caching, IAM policies."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge.harness import RunningEdge, running_edge

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEdge]:
    with running_edge() as running:
        yield running


@pytest.fixture
def calls(tmp_path: Path) -> Iterator[Path]:
    """The file the test authorizer appends each event it receives to."""
    log = tmp_path / "authorizer.log"
    log.touch()
    os.environ["EDGE_TEST_AUTHORIZER_LOG"] = str(log)
    yield log
    del os.environ["EDGE_TEST_AUTHORIZER_LOG"]


def _count(log: Path) -> int:
    return len(log.read_text().splitlines())


def test_missing_identity_is_401_without_invoking_the_authorizer(
    edge: RunningEdge, calls: Path
) -> None:
    for headers in ({}, {"Authorization": ""}):
        response = edge.client.get("/private", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized"}
    assert _count(calls) == 0


def test_allowed_request_reaches_the_function_with_the_context(
    edge: RunningEdge, calls: Path
) -> None:
    response = edge.client.get("/private", headers={"Authorization": "Bearer allow"})
    assert response.status_code == 200
    context = response.json()["event"]["requestContext"]
    assert context["authorizer"] == {"lambda": {"userId": "u-1", "role": "user"}}
    event = json.loads(calls.read_text().splitlines()[0])
    assert event["type"] == "REQUEST"
    assert event["version"] == "2.0"
    assert event["identitySource"] == ["Bearer allow"]
    assert event["routeArn"].endswith("/$default/GET/private")
    assert event["routeKey"] == "GET /private"
    assert "body" not in event


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("deny", 403, "Forbidden"),
        ("boom", 500, "Internal Server Error"),
        ("slow", 500, "Internal Server Error"),
        ("garbage", 500, "Internal Server Error"),
    ],
)
def test_refusals_and_authorizer_failures(
    edge: RunningEdge, calls: Path, token: str, status: int, message: str
) -> None:
    response = edge.client.get("/private", headers={"Authorization": token})
    assert response.status_code == status
    assert response.json() == {"message": message}
    assert edge.client.get("/echo").status_code == 200


def test_decisions_are_cached_per_identity_for_the_ttl(edge: RunningEdge, calls: Path) -> None:
    # GIVEN the Simple authorizer with ReauthorizeEvery: 1
    headers = {"Authorization": "Bearer allow cache-test"}
    for _ in range(3):
        edge.client.get("/private", headers=headers)
    assert _count(calls) == 1  # one invocation for three requests
    edge.client.get("/private", headers={"Authorization": "Bearer other"})
    assert _count(calls) == 2  # another identity, another decision
    time.sleep(1.1)
    edge.client.get("/private", headers=headers)
    assert _count(calls) == 3  # the TTL expired


def test_a_function_changing_its_authorizer_context_changes_no_other_request(
    edge: RunningEdge, calls: Path
) -> None:
    # GIVEN the cached Simple authorizer (ReauthorizeEvery: 1) and a function that rewrites
    # event.requestContext.authorizer.lambda in place
    headers = {"Authorization": "Bearer allow"}
    first = edge.client.post("/protected/mutate", headers=headers)
    # WHEN the same identity calls again while its decision is cached
    second = edge.client.post("/protected/mutate", headers=headers)
    # THEN each invocation saw the authorizer's own context, as each JSON event on AWS would
    assert first.status_code == second.status_code == 200
    assert json.loads(first.text) == json.loads(second.text) == {"role": "user", "userId": "u-1"}
    assert _count(calls) <= 1  # the second answer came from the cache (unless its 1 s passed)
    # AND a route of another function gets the same untouched context
    answer = edge.client.get("/private", headers=headers).json()
    assert answer["event"]["requestContext"]["authorizer"]["lambda"] == {
        "userId": "u-1",
        "role": "user",
    }


def test_ttl_zero_invokes_every_time_and_needs_every_identity_source(
    edge: RunningEdge, calls: Path
) -> None:
    headers = {"Authorization": "allow"}
    assert edge.client.get("/uncached", headers=headers).status_code == 401  # no ?tenant=
    assert _count(calls) == 0
    for _ in range(2):
        assert edge.client.get("/uncached?tenant=t1", headers=headers).status_code == 200
    assert _count(calls) == 2
    event = json.loads(calls.read_text().splitlines()[0])
    assert event["identitySource"] == ["allow", "t1"]


@pytest.mark.parametrize(
    ("token", "status"), [("allow", 200), ("wildcard", 200), ("deny", 403), ("elsewhere", 403)]
)
def test_iam_policy_responses(edge: RunningEdge, token: str, status: int) -> None:
    response = edge.client.get("/policy/7", headers={"Authorization": token})
    assert response.status_code == status
    if status == 200:
        assert response.json()["event"]["requestContext"]["authorizer"] == {
            "lambda": {"via": "policy"}
        }


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_the_authorizer_decides_alike_whether_the_access_line_is_written_or_not(
    level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an edge whose access lines are written (INFO) or not (WARNING, as `make bench`
    # runs: the edge then records nothing of the authorizer step for them)
    monkeypatch.setenv("LOG_LEVEL", level)
    with running_edge() as served:
        assert served.app.access_log.enabled is (level == "INFO")
        client = served.client
        # WHEN a token is allowed (asked, then from the cache), denied, or the authorizer fails
        answers = [
            client.get("/private", headers={"Authorization": token})
            for token in ("Bearer allow", "Bearer allow", "Bearer nope", "boom")
        ]
    # THEN each gets the same answer either way, the allowed ones with the authorizer's context
    assert [answer.status_code for answer in answers] == [200, 200, 403, 500]
    for allowed in answers[:2]:
        context = allowed.json()["event"]["requestContext"]
        assert context["authorizer"] == {"lambda": {"userId": "u-1", "role": "user"}}
    assert answers[2].json() == {"message": "Forbidden"}
    assert answers[3].json() == {"message": "Internal Server Error"}
