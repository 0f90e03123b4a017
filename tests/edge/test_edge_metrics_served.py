"""The edge's own GET /metrics, in-process (one worker): what each kind of answer adds, and the
path that must never hide a template route."""

from __future__ import annotations

import pytest

from lucid_edge.metrics import MetricsPathError
from lucid_edge.server import build_app
from tests.edge.harness import FIXTURES, TEMPLATE, running_edge
from tests.edge.test_edge_metrics import value


def test_every_answer_is_counted_by_route_function_status_and_kind() -> None:
    with running_edge() as edge:
        client = edge.client
        # GIVEN answers of each kind: a function's 200, its crash, an invalid result, a path
        # no route matches, a missing identity (401), and an authorizer asked once then cached
        assert client.get("/echo").status_code == 200
        assert client.get("/faulty/raise").status_code == 500
        assert client.get("/faulty/garbage").status_code == 500
        assert client.get("/nowhere").status_code == 404
        assert client.get("/private").status_code == 401
        for _ in range(2):
            assert client.get("/private", headers={"Authorization": "allow"}).status_code == 200
        assert client.get("/private", headers={"Authorization": "boom"}).status_code == 500
        # WHEN Prometheus scrapes the edge
        scrape = client.get(edge.url + "/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=")
    text = scrape.content
    # THEN each answer is counted where it belongs
    echo = {"route": "GET /echo", "function": "EchoFunction"}
    assert value(text, "lucid_requests_total", status="200", **echo) == 1
    faulty = {"route": "ANY /faulty/{action}", "function": "FaultyFunction"}
    assert value(text, "lucid_requests_total", status="500", **faulty) == 2
    assert value(text, "lucid_request_duration_seconds_count", status="500", **faulty) == 2
    assert value(text, "lucid_requests_total", route="-", function="-", status="404") == 1
    private = {"route": "GET /private", "function": "EchoFunction"}
    assert value(text, "lucid_requests_total", status="401", **private) == 1
    assert value(text, "lucid_requests_total", status="200", **private) == 2
    # AND the functions' failures by kind, the authorizer's cache and failures
    errors = "lucid_function_errors_total"
    assert value(text, errors, function="FaultyFunction", kind="raised") == 1
    assert value(text, errors, function="FaultyFunction", kind="invalid_result") == 1
    cache = "lucid_authorizer_cache_total"
    assert value(text, cache, authorizer="Simple", result="miss") == 2  # allow, then boom
    assert value(text, cache, authorizer="Simple", result="hit") == 1
    assert value(text, "lucid_authorizer_errors_total", authorizer="Simple") == 1
    # AND the instances of the functions that ran, the worker's concurrency limit
    assert (value(text, "lucid_function_instances", function="FaultyFunction") or 0) >= 1
    assert value(text, "lucid_function_queue_depth", function="FaultyFunction") == 0
    assert value(text, "lucid_concurrency_limit") == 2


def test_the_stage_throttle_is_counted_apart_from_the_answers() -> None:
    with running_edge(FIXTURES / "throttled.yaml") as edge:
        statuses = [edge.client.get("/own").status_code for _ in range(3)]
        text = edge.client.get(edge.url + "/metrics").content
    assert statuses == [200, 429, 429]
    assert value(text, "lucid_throttled_requests_total", route="GET /own") == 2
    own = {"route": "GET /own", "function": "FaultyFunction"}
    assert value(text, "lucid_requests_total", status="429", **own) == 2


def test_head_answers_without_a_body_and_other_methods_are_the_apis() -> None:
    with running_edge() as edge:
        head = edge.client.head(edge.url + "/metrics")
        post = edge.client.post(edge.url + "/metrics")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert post.status_code == 404  # not the edge's: the template has no such route
    assert post.json() == {"message": "Not Found"}


def test_a_metrics_path_a_template_route_answers_is_refused_at_start() -> None:
    # GIVEN the fixture's greedy route ANY /files/{proxy+}
    with pytest.raises(MetricsPathError, match=r"GET /files/metrics"):
        build_app(TEMPLATE, metrics_path="/files/metrics")
    # AND elsewhere the edge serves its metrics there
    edge = build_app(TEMPLATE, metrics_path="/_edge/metrics")
    edge.close()
