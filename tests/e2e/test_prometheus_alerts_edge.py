"""An alert of monitoring/alerts.yml fires on the first burst of what it counts: a real Prometheus
(Debian's package) scraping a real `lucid serve` whose stage throttle refuses a burst.

`LucidApiThrottling` is `sum(increase(lucid_throttled_requests_total[5m])) > 10`. `increase()`
counts what a series gained between two scrapes; had the series first appeared after the burst,
at its final value, it would have gained nothing and the alert never fired.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.prometheus import Prometheus, running_prometheus
from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge

pytestmark = pytest.mark.e2e

BURST = 30
# A bucket of 3 requests refilled every 1,000 s: everything past the first 3 is refused (429).
THROTTLE = {"ThrottlingBurstLimit": "3", "ThrottlingRateLimit": "0.001"}
FIRING = 'ALERTS{{alertname="{}",alertstate="firing"}}'
SCRAPED = 'timestamp(up{job="lucid-edge"})'  # when the edge was last scraped


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    with subprocess_edge({}, THROTTLE) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(edge: SubprocessEdge) -> Iterator[Prometheus]:
    # monitoring/prometheus.yml's interval: a burst fits between two scrapes
    with running_prometheus(edge.url, scrape_interval="5s") as running:
        yield running


def test_the_throttle_alert_fires_on_the_first_burst(
    edge: SubprocessEdge, prometheus: Prometheus
) -> None:
    # GIVEN Prometheus scraping the edge, nothing throttled yet, and a scrape just taken
    prometheus.eventually('up{job="lucid-edge"}', lambda v: v == 1)
    last = prometheus.eventually(SCRAPED)
    prometheus.eventually(SCRAPED, lambda v: v > last)
    assert prometheus.value(FIRING.format("LucidApiThrottling")) is None

    # WHEN a burst arrives at once, once, and the stage throttle refuses most of it
    def one(_: int) -> int:
        with edge.client(headers={"Connection": "close"}) as client:
            return client.get("/health").status_code

    with ThreadPoolExecutor(BURST) as pool:
        statuses = list(pool.map(one, range(BURST)))
    refused = statuses.count(429)
    assert refused > 10, statuses
    # THEN Prometheus holds the exact count, summed over both workers
    total = prometheus.eventually("sum(lucid_throttled_requests_total)", lambda v: v >= refused)
    assert total == refused
    # AND sees it as an increase, so the alert fires, naming the alarm it stands for in AWS
    prometheus.eventually("sum(increase(lucid_throttled_requests_total[5m]))", lambda v: v > 10)
    prometheus.eventually(FIRING.format("LucidApiThrottling"), lambda v: v == 1)
    alerts = prometheus.get("/api/v1/alerts")["alerts"]
    (alert,) = [a for a in alerts if a["labels"]["alertname"] == "LucidApiThrottling"]
    assert alert["labels"]["cloudwatch_alarm"] == "ApiThrottleAlarm"
