"""The counters the local alert rules read exist, at 0, before their first event.

Prometheus's `increase()` counts what a series gained between scrapes; a series first scraped
after a burst gained nothing, so an alert on it misses that burst (the end-to-end proof with a
real Prometheus is tests/e2e/test_prometheus_alerts_edge.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lucid_edge.metrics import FUNCTION_ERROR_KINDS
from tests.edge.conftest import REAL_TEMPLATE
from tests.edge.harness import RunningEdge, running_edge
from tests.monitoring.exports import alert_rules

# The rules counting events in a window (the 5xx and latency rules take rates of the requests,
# sustained for 5 minutes: their series exist from the first request on).
_INCREASED = re.compile(r"\bincrease\((lucid_[a-z_]+)")


@pytest.fixture(scope="module")
def fresh() -> Iterator[RunningEdge]:
    """The real template served, no request answered yet."""
    with running_edge(REAL_TEMPLATE) as running:
        yield running


def test_every_failure_counter_is_exported_at_zero_before_any_request(fresh: RunningEdge) -> None:
    # GIVEN the edge serving the template, before its first request
    app = fresh.app
    # WHEN Prometheus scrapes it
    response = fresh.client.get(fresh.url + app.metrics_path)
    assert response.status_code == 200
    found = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    # THEN each counter an alert rule takes the increase of has its series already
    increased = {m for rule in alert_rules() for m in _INCREASED.findall(rule["expr"])}
    assert increased >= {"lucid_throttled_requests_total", "lucid_function_errors_total"}
    assert increased <= {name for name, _ in found}
    # AND at 0 for every route, authorizer, function and way of failing
    api = app.template.api
    expected = [("lucid_throttled_requests_total", {"route": r.route_key}) for r in api.routes]
    expected += [("lucid_authorizer_errors_total", {"authorizer": a}) for a in api.authorizers]
    for function in app.functions:
        expected += [
            ("lucid_function_errors_total", {"function": function, "kind": kind})
            for kind in FUNCTION_ERROR_KINDS
        ]
        expected += [
            (name, {"function": function})
            for name in (
                "lucid_ratelimit_fallbacks_total",
                "lucid_breaker_rejections_total",
                # not an alert's: the dashboard's "Cold starts" panel, increase() over 5 minutes
                "lucid_cold_starts_total",
            )
        ]
    for name, labels in expected:
        assert found.get((name, frozenset(labels.items()))) == 0.0, (name, labels)
