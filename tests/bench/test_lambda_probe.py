"""The cold-start probe hands a handler the context Lambda's Python runtime would."""

from __future__ import annotations

from pathlib import Path

from bench.probes import LAMBDA_ENV, invoke_cold


def test_probe_context_memory_limit_is_the_runtime_string(tmp_path: Path) -> None:
    # GIVEN a handler that reports the context's memory limit and its type
    (tmp_path / "memory_fn.py").write_text(
        "def handler(event, context):\n"
        "    value = context.memory_limit_in_mb\n"
        "    return {'value': value, 'type': type(value).__name__}\n"
    )
    # WHEN the probe cold-starts it in a fresh interpreter
    report = invoke_cold([tmp_path], "memory_fn.handler", {})
    # THEN it got AWS_LAMBDA_FUNCTION_MEMORY_SIZE as a string, as awslambdaric passes it
    assert report["answer"] == {
        "value": LAMBDA_ENV["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
        "type": "str",
    }
