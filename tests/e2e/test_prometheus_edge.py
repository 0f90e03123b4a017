"""A real Prometheus (Debian's package) scraping a running `lucid serve` with two workers, with
the monitoring/ alert rules loaded: a little traffic, then a request rate, an exact count summed
over both workers and a latency quantile read back through Prometheus's HTTP API."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from lucid_edge.local import EmbeddedRedis
from tests.e2e.prometheus import WAIT_SECONDS, Prometheus, running_prometheus
from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge
from tests.monitoring.exports import alert_rules

pytestmark = pytest.mark.e2e

HEALTH_REQUESTS = 40
INFO_REQUESTS = 10


@pytest.fixture(scope="module")
def edge(redis_server: EmbeddedRedis) -> Iterator[SubprocessEdge]:
    # Every breaker closed in the session's Redis, which this edge shares: what earlier tests
    # tripped must not show here.
    with redis.Redis.from_url(redis_server.uri) as client:
        for key in client.scan_iter("lucid:local:breaker:*"):
            client.delete(key)
    with subprocess_edge({}) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(edge: SubprocessEdge) -> Iterator[Prometheus]:
    with running_prometheus(edge.url) as running:
        yield running


def test_prometheus_reads_the_edges_traffic_back(
    edge: SubprocessEdge, prometheus: Prometheus
) -> None:
    # GIVEN Prometheus scraping the edge, and the series already there (a rate needs a sample
    # before the traffic: a series first scraped at its final value has no increase)
    prometheus.eventually('up{job="lucid-edge"}', lambda v: v == 1)
    health = 'route="GET /health",function="MetaFunction",status="200"'
    with edge.client() as client:
        assert client.get("/health").status_code == 200
    prometheus.eventually(f"sum(lucid_requests_total{{{health}}})", lambda v: v == 1)
    # WHEN a little traffic arrives, each request on a new connection (both workers serve)
    for path, times in (("/health", HEALTH_REQUESTS), ("/meta/info", INFO_REQUESTS)):
        for _ in range(times):
            with edge.client(headers={"Connection": "close"}) as client:
                assert client.get(path).status_code == 200
    # THEN the count Prometheus holds is exact, whichever worker served each request
    total = prometheus.eventually(
        f"sum(lucid_requests_total{{{health}}})", lambda v: v >= 1 + HEALTH_REQUESTS
    )
    assert total == 1 + HEALTH_REQUESTS
    # AND the request rate and a latency quantile come back through its HTTP API
    rate = prometheus.eventually(f"sum(rate(lucid_requests_total{{{health}}}[1m]))", bool)
    assert rate > 0
    p50 = prometheus.eventually(
        "histogram_quantile(0.5, sum by (le) "
        f"(rate(lucid_request_duration_seconds_bucket{{{health}}}[1m])))"
    )
    assert 0 < p50 < 1
    # AND the series behind the dashboard's gauges are there for every function
    instances = prometheus.get(
        "/api/v1/query", query="sum by (function) (lucid_function_instances)"
    )["result"]
    assert {r["metric"]["function"] for r in instances} >= {"MetaFunction", "ProxyFunction"}
    breakers = prometheus.eventually('sum(lucid_breaker_state{state="closed"})')
    assert breakers == 3  # blockchain, session, node: all closed, read from Redis


def test_prometheus_loads_every_alert_rule_and_none_fires(prometheus: Prometheus) -> None:
    groups = prometheus.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
    deadline = time.monotonic() + WAIT_SECONDS
    while any(rule.get("health") != "ok" for rule in rules):  # evaluated once at least
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
    assert [rule["name"] for rule in rules if rule["state"] != "inactive"] == []


def _readme_prometheus_section() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### Watch the local edge in Prometheus", 1)[1].split("\n## ", 1)[0]
    return re.sub(r"```.*?```", "", section, flags=re.DOTALL)


def test_the_readmes_prometheus_pages_and_queries_answer(prometheus: Prometheus) -> None:
    # GIVEN the pages and queries the README's "Watch the local edge in Prometheus" names, on
    # the Prometheus `make test` installs (Debian's package, which serves only Prometheus's
    # classic pages: prometheus/prometheus#11669)
    section = _readme_prometheus_section()
    pages = re.findall(r"<http://127\.0\.0\.1:9090(/[^>]*)>", section)
    queries = [q for q in re.findall(r"`([^`]+)`", section) if "lucid_" in q]
    assert len(pages) >= 2
    assert len(queries) >= 4
    # WHEN each page is opened as a browser would (following redirects)
    for page in pages:
        response = httpx.get(prometheus.url + page, follow_redirects=True, timeout=5)
        # THEN it is a page, not a 404
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html"), page
    # AND each query is one Prometheus accepts (an invalid one is a 400, raised here)
    for query in queries:
        assert isinstance(prometheus.get("/api/v1/query", query=query)["result"], list)
