"""Read the CloudWatch EMF lines the functions print (Powertools Metrics) back as totals."""

from __future__ import annotations

import json

from lucid.observability import flush_metrics


def emitted(output: str) -> dict[str, float]:
    """Totals per metric name over the EMF lines in `output` (other lines ignored)."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            values = record[metric["Name"]]
            values = values if isinstance(values, list) else [values]
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


def without_metrics(output: str) -> str:
    """`output` without its EMF lines: an in-process edge's functions print theirs to the same
    stdout as the CLI under test (a ColdStart metric on each function's first invocation)."""
    return "\n".join(line for line in output.splitlines() if not line.startswith('{"_aws"'))


def flushed() -> None:
    """Flush what a code path outside a request recorded, so `emitted` can read it."""
    flush_metrics()
