"""What the local edge exports and what the monitoring files ask of it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lucid_edge.metrics import EdgeMetrics, FunctionLoad

MONITORING = Path(__file__).parents[2] / "monitoring"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_METRIC_NAME = re.compile(r"\blucid_[a-z_]+\b")


def exported_names() -> set[str]:
    """Every sample name the edge's /metrics can carry (declared series, with no traffic)."""
    metrics = EdgeMetrics(
        lambda: {"MetaFunction": FunctionLoad(1, 0)},
        lambda: (0, 32),
        breaker_states=lambda: {"blockchain": "closed"},
    )
    try:
        names: set[str] = set()
        for family in metrics.registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        return names
    finally:
        metrics.close()


def alert_rules() -> list[dict[str, Any]]:
    """The alerting rules of monitoring/alerts.yml."""
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of the Grafana dashboard."""
    dashboard = json.loads((MONITORING / "grafana" / "lucid-edge.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (ours all start with `lucid_`)."""
    return set(_METRIC_NAME.findall(expression))
