"""Structured logging and metrics: one Powertools Logger and one Metrics per process.

The logger writes one JSON object per line (CloudWatch Logs Insights reads the keys); metrics
are CloudWatch Embedded Metric Format lines, flushed at the end of an invocation only when the
invocation recorded one, so the hot path prints nothing it does not need.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from lucid.config import get_settings

__all__ = ["MetricUnit", "count", "flush_metrics", "logger", "metrics"]

_settings = get_settings()

logger = Logger(
    service=_settings.SERVICE_NAME,
    level=_settings.LOG_LEVEL,
    logger_handler=None,
    use_rfc3339=True,
)
# Our modules log through the standard library ("lucid.*"); route them into the same JSON output.
logging.getLogger("lucid").handlers = logger.handlers
logging.getLogger("lucid").setLevel(_settings.LOG_LEVEL)
logging.getLogger("lucid").propagate = False

metrics = Metrics(service=_settings.SERVICE_NAME)


def count(name: str) -> None:
    """Add one to the metric `name` (an event worth alarming on: sign-ins, trips, refusals)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def flush_metrics() -> None:
    """Print the metrics this invocation recorded as EMF, if any; nothing otherwise."""
    if metrics.metric_set:
        metrics.flush_metrics()
