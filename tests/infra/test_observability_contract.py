"""Each CloudWatch alarm and dashboard metric on our own metrics against what the functions
really print, as CloudWatch would match them.

CloudWatch identifies a metric by its namespace, its name and its whole set of dimensions with
their values: an alarm on `service` alone reads nothing an EMF line publishes only under
`service`+`route`, and an alarm of one stack reads everything another stack publishes under the
same namespace and dimensions
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html,
"Dimensions": "CloudWatch treats each unique combination of dimensions as a separate metric").
So the lines here are real: a fresh interpreter with only the environment the template gives a
function of the stage (the edge's template loader resolves it, Globals merged), invoking the
real meta handler and counting events through `lucid.observability`, as the functions do.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lucid_edge.intrinsics import Resolver, load_yaml
from lucid_edge.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
ALARM = "AWS::CloudWatch::Alarm"
METRIC_FILTER = "AWS::Logs::MetricFilter"
DASHBOARD = "AWS::CloudWatch::Dashboard"
HTTP_API = "AWS::Serverless::HttpApi"
# Namespaces AWS publishes to; every other one an alarm reads is ours.
AWS_NAMESPACES = {"AWS/ApiGateway", "AWS/Lambda"}
_SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}((?: \w+=\"[^\"]*\")+)'")
_TERM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Stack:
    """One stage's template, resolved as CloudFormation would resolve it for its parameters."""

    environments: dict[str, dict[str, str]]  # each function's environment, Globals merged
    resources: dict[str, tuple[str, dict[str, Any]]]  # logical id: (type, resolved properties)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: props for name, (t, props) in self.resources.items() if t == kind}


@cache
def stack(stage: str) -> Stack:
    """The template deployed as `Stage=<stage>`, read by the edge's own template loader (the
    one function here that reads infra/template.yaml: re-point it, not the tests)."""
    overrides = {
        "Stage": stage,
        "JwtSecretParam": f"/lucid/{stage}/jwt-key",
        "MongoDbUriParam": f"/lucid/{stage}/mongodb-uri",
        "RedisUriParam": f"/lucid/{stage}/redis-uri",
    }
    template = load_template(TEMPLATE, overrides)
    raw = load_yaml(TEMPLATE)
    resolver = Resolver(template.parameters, frozenset(raw["Resources"]), raw["Conditions"])
    resources = {
        name: (r["Type"], resolver.resolve(r.get("Properties") or {}, name))
        for name, r in raw["Resources"].items()
        if r["Type"] in (ALARM, METRIC_FILTER, DASHBOARD, HTTP_API)
    }
    environments = {name: dict(f.environment) for name, f in template.functions.items()}
    return Stack(environments, resources)


@cache
def printed(stage: str, *events: str) -> tuple[dict[str, Any], ...]:
    """The EMF lines a function of `stage` prints for GET /health and for counting `events`."""
    environment = stack(stage).environments["ProxyFunction"]
    result = subprocess.run(
        [sys.executable, "-m", "tests.infra.emf_probe", *events],
        cwd=ROOT,
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return tuple(line for line in lines if "_aws" in line)


def published(
    lines: tuple[dict[str, Any], ...], namespace: str, name: str, dimensions: dict[str, str]
) -> list[float]:
    """The values of metric `name` with exactly `dimensions` in `namespace` that `lines`
    publish: what an alarm or a graph on that metric reads."""
    values: list[float] = []
    for line in lines:
        for directive in line["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != namespace:
                continue
            if name not in {metric["Name"] for metric in directive["Metrics"]}:
                continue
            if any(
                set(names) == set(dimensions)
                and all(line.get(key) == value for key, value in dimensions.items())
                for names in directive["Dimensions"]
            ):
                values.extend(line[name])
    return values


def alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, metric, dimensions, statistic) of each metric an alarm reads."""
    stats = [alarm] if "MetricName" in alarm else []
    stats += [
        q["MetricStat"] | q["MetricStat"]["Metric"]
        for q in alarm.get("Metrics", [])
        if "MetricStat" in q  # not an expression over the others
    ]
    return [
        (
            s["Namespace"],
            s["MetricName"],
            {d["Name"]: d["Value"] for d in s.get("Dimensions", [])},
            s.get("Statistic") or s.get("Stat") or "",
        )
        for s in stats
    ]


def dashboard_metrics(body: str) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every graph line on our namespaces."""
    found: list[tuple[str, str, dict[str, str]]] = []
    for widget in json.loads(body)["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], dict):  # SEARCH('{namespace,dims} MetricName="x" dim="v"')
                for schema, terms in _SEARCH.findall(line[0]["expression"]):
                    namespace, *names = (part.strip('"') for part in schema.split(","))
                    given = dict(_TERM.findall(terms))
                    metric = given.pop("MetricName")
                    # a schema names every dimension; the terms fix some of their values
                    found.append((namespace, metric, {n: given.get(n, "*") for n in names}))
                continue
            strings = [item for item in line if isinstance(item, str)]
            dimensions = dict(zip(strings[2::2], strings[3::2], strict=True))
            found.append((strings[0], strings[1], dimensions))
    return [metric for metric in found if metric[0] not in AWS_NAMESPACES]


def ours(stage: str) -> list[tuple[str, str, str, dict[str, str], str]]:
    """(alarm, namespace, metric, dimensions, statistic) of every alarm on the functions' EMF."""
    filtered = {
        t["MetricName"]
        for f in stack(stage).of_type(METRIC_FILTER).values()
        for t in f["MetricTransformations"]
    }
    return [
        (name, *metric)
        for name, alarm in stack(stage).of_type(ALARM).items()
        for metric in alarm_metrics(alarm)
        if metric[0] not in AWS_NAMESPACES and metric[1] not in filtered
    ]


def _fixed(dimensions: dict[str, str], line: dict[str, Any]) -> dict[str, str]:
    """A graph's dimensions with its wildcards (`*`) taken from `line`."""
    return {k: (str(line.get(k)) if v == "*" else v) for k, v in dimensions.items()}


def test_the_check_tells_a_dimension_set_never_published() -> None:
    # GIVEN a real line publishing CircuitRejected under service, service+route, service+function
    lines = printed("prod", "CircuitRejected")
    namespace = stack("prod").environments["ProxyFunction"]["POWERTOOLS_METRICS_NAMESPACE"]
    service = {"service": "lucid-api-gateway"}
    assert published(lines, namespace, "CircuitRejected", service) == [1.0]
    # THEN a subset, a superset or another value of the dimensions reads nothing
    assert published(lines, namespace, "CircuitRejected", {}) == []
    assert published(lines, namespace, "CircuitRejected", service | {"stage": "prod"}) == []
    assert published(lines, namespace, "CircuitRejected", {"service": "other"}) == []
    assert published(lines, namespace + "x", "CircuitRejected", service) == []


def test_each_alarm_on_our_metrics_reads_what_the_functions_print() -> None:
    # GIVEN every alarm of a deployed stage that reads the functions' own metrics
    alarms = ours("prod")
    assert {alarm for alarm, *_ in alarms} >= {"BreakerHeldOpenAlarm", "RateLimitFallbackAlarm"}
    # (every function prints under the same namespace and service: one function stands for all)
    environments = stack("prod").environments.values()
    for variable in ("POWERTOOLS_METRICS_NAMESPACE", "SERVICE_NAME", "POWERTOOLS_SERVICE_NAME"):
        assert len({environment[variable] for environment in environments}) == 1, variable
    # WHEN a function of that stage counts each event they read
    lines = printed("prod", *sorted({metric for _, _, metric, _, _ in alarms}))
    # THEN each alarm's exact namespace, name and dimensions find what was printed, as counts
    for alarm, namespace, metric, dimensions, statistic in alarms:
        assert published(lines, namespace, metric, dimensions) == [1.0], alarm
        assert statistic == "Sum", alarm
        units = {
            m["Unit"]
            for line in lines
            for d in line["_aws"]["CloudWatchMetrics"]
            for m in d["Metrics"]
            if m["Name"] == metric
        }
        assert units == {"Count"}, alarm


def test_the_dashboard_graphs_what_the_functions_print() -> None:
    # GIVEN the lines of a GET /health and of each event the dashboard graphs
    (dashboard,) = stack("prod").of_type(DASHBOARD).values()
    graphs = dashboard_metrics(dashboard["DashboardBody"])
    filtered = {"ApiThrottled"}  # the access log's metric filter, not the functions
    events = sorted({m for _, m, _ in graphs} - filtered - {"Latency", "Fault", "ColdStart"})
    lines = printed("prod", *events)
    # THEN every graph on the functions' metrics finds them
    for namespace, metric, dimensions in graphs:
        if metric in filtered:
            continue
        found = [
            value
            for line in lines
            for value in published((line,), namespace, metric, _fixed(dimensions, line))
        ]
        assert found, f"{namespace} {metric} {dimensions}"


def test_a_stage_reads_nothing_another_stage_prints() -> None:
    # GIVEN a dev and a prod stack with the template's default ServiceName, as samconfig.toml
    # deploys them (one account, one Region)
    alarms = ours("prod")
    (dashboard,) = stack("prod").of_type(DASHBOARD).values()
    graphs = dashboard_metrics(dashboard["DashboardBody"])
    # WHEN a dev function counts every event prod's alarms and dashboard read, and serves a GET
    events = sorted({m for _, _, m, _, _ in alarms} | {m for _, m, _ in graphs} - {"ApiThrottled"})
    dev = printed("dev", *events)
    # THEN no prod alarm reads it: a dev backend's breaker or Redis outage never pages prod
    for alarm, namespace, metric, dimensions, _ in alarms:
        assert published(dev, namespace, metric, dimensions) == [], alarm
    # AND no prod graph shows it
    for namespace, metric, dimensions in graphs:
        for line in dev:
            assert published((line,), namespace, metric, _fixed(dimensions, line)) == [], metric


def test_the_throttle_alarm_reads_the_metric_its_filter_writes() -> None:
    # GIVEN the access log's metric filter and the alarm on what it writes
    (metric_filter,) = stack("prod").of_type(METRIC_FILTER).values()
    (transformation,) = metric_filter["MetricTransformations"]
    alarm = stack("prod").of_type(ALARM)["ApiThrottleAlarm"]
    ((namespace, metric, dimensions, statistic),) = alarm_metrics(alarm)
    # THEN the alarm's namespace, name and dimension names are the filter's, the dimension's
    # value is this API's id (what `$context.apiId` writes into the line), and it sums counts
    assert (namespace, metric) == (transformation["MetricNamespace"], transformation["MetricName"])
    assert {d["Key"]: d["Value"] for d in transformation["Dimensions"]} == {"ApiId": "$.apiId"}
    assert dimensions == {"ApiId": "HttpApi"}  # Ref HttpApi, the API's id once deployed
    assert statistic == "Sum"
    assert (transformation["MetricValue"], transformation["Unit"]) == ("1", "Count")
    access_log = stack("prod").of_type(HTTP_API)["HttpApi"]["AccessLogSettings"]["Format"]
    assert '"apiId":"$context.apiId"' in access_log


def test_every_event_the_functions_count_is_on_the_dashboard() -> None:
    # GIVEN every event the layer and the functions count (`count("Name")`)
    counted = {
        name
        for folder in ("shared", "functions")
        for path in (ROOT / folder).rglob("*.py")
        for name in re.findall(r'\bcount\(\s*"(\w+)"', path.read_text(encoding="utf-8"))
    }
    assert {"CircuitRejected", "RevocationNotCopied"} <= counted
    # THEN the dashboard graphs each (RateLimitFallback is counted through its constant)
    (dashboard,) = stack("prod").of_type(DASHBOARD).values()
    graphed = {metric for _, metric, _ in dashboard_metrics(dashboard["DashboardBody"])}
    assert counted | {"RateLimitFallback"} <= graphed
