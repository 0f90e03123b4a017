"""A named stage served as AWS serves it: only under `/{stage}`, `rawPath` keeping the prefix,
the route key and the authorizer's routeArn without it, 404 `{"message":"Not Found"}` elsewhere
(SAM creates no `$default` stage beside a named one: notes/aws-facts.md section 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lucid_edge.events import EventBuilder
from lucid_edge.model import RouteSpec
from lucid_edge.routing import RouteTable
from tests.edge.harness import RunningEdge, running_edge
from tests.utils.events import load_event

NOT_FOUND = {"message": "Not Found"}
ORIGIN = "http://allowed.example"


@pytest.fixture(scope="module")
def staged() -> Iterator[RunningEdge]:
    with running_edge(overrides={"ApiStage": "test"}) as running:
        yield running


def test_the_client_base_url_carries_the_stage(staged: RunningEdge) -> None:
    assert staged.base_url == staged.url + "/test"


def test_a_route_answers_under_the_stage_with_the_whole_path_in_the_event(
    staged: RunningEdge,
) -> None:
    # WHEN a client calls GET /test/items/42 on stage "test"
    event = staged.client.get("/items/42").json()["event"]
    # THEN the function gets the path as AWS sends it: prefixed, the route key without it
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/test/items/42"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /items/{id}"
    assert event["requestContext"]["stage"] == "test"
    assert event["pathParameters"] == {"id": "42"}


@pytest.mark.parametrize("path", ["/echo", "/items/42", "/", "/test", "/testing/echo"])
def test_outside_the_stage_or_on_no_route_it_is_404_without_invoking(
    staged: RunningEdge, path: str
) -> None:
    response = staged.client.get(staged.url + path, headers={"Origin": ORIGIN})
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    # AND outside the stage nothing of the API answers: no CORS headers, even for its origin
    if not path.startswith("/test"):
        assert not [name for name in response.headers if name.startswith("access-control-")]
        assert "vary" not in response.headers


def test_the_authorizer_sees_the_stage_apart_from_the_path(
    staged: RunningEdge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("EDGE_TEST_AUTHORIZER_LOG", str(calls))
    response = staged.client.get("/private", headers={"Authorization": "Bearer allow-staged"})
    assert response.status_code == 403  # the fixture authorizer allows the token "allow" only
    (event,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert event["routeArn"].endswith(":Api/test/GET/private")
    assert event["rawPath"] == "/test/private"
    assert event["routeKey"] == "GET /private"


def test_preflights_are_answered_inside_the_stage_only(staged: RunningEdge) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    inside = staged.client.options("/echo", headers=preflight)
    assert inside.status_code == 204
    assert inside.headers["access-control-allow-origin"] == ORIGIN
    assert inside.headers["vary"] == "Origin"
    outside = staged.client.options(staged.url + "/echo", headers=preflight)
    assert outside.status_code == 404
    assert outside.json() == NOT_FOUND
    assert "access-control-allow-origin" not in outside.headers


def test_the_built_event_has_the_shape_of_aws_named_stage_sample() -> None:
    # GIVEN AWS's event for GET /dev/health on stage dev (tests/events)
    golden = load_event("http_api_v2_stage.json")
    built = EventBuilder("lucidapi01", "dev").build(
        method="GET",
        path="/dev/health",
        raw_query="",
        raw_headers=[(b"host", b"lucidapi01.execute-api.us-east-1.amazonaws.com")],
        http_version="1.1",
        source_ip="198.51.100.7",
        server_port="443",
        route_key="GET /health",
        path_parameters=None,
        body=b"",
        request_id="JKJaXmPLvHcESHA=",
    )
    # THEN the fields that carry the stage are AWS's, and no field is missing or extra
    assert set(built) == set(golden)
    assert set(built["requestContext"]) == set(golden["requestContext"])
    for key in ("rawPath", "routeKey"):
        assert built[key] == golden[key]
    context: dict[str, Any] = built["requestContext"]
    assert (context["http"]["path"], context["routeKey"], context["stage"]) == (
        golden["requestContext"]["http"]["path"],
        golden["requestContext"]["routeKey"],
        golden["requestContext"]["stage"],
    )


def test_route_table_stage_selection() -> None:
    route = RouteSpec("GET", "/health", "Fn", None, None, 3.0)
    named, default = RouteTable([route], "v1"), RouteTable([route])
    assert named.stage_path("/v1/health") == "/health"
    assert named.stage_path("/v1") == "/"
    assert named.stage_path("/v1x/health") is None
    assert named.match("GET", "/v1/health") is not None
    assert named.match("GET", "/health") is None
    assert default.match("GET", "/health") is not None
    assert default.match("GET", "/v1/health") is None
