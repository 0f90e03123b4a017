"""The cold-start probe hands a handler the context Lambda's Python runtime would, and counts the
instructions of a cold start (`make bench coldstart`)."""

from __future__ import annotations

import compileall
import shutil
from pathlib import Path

import pytest

from bench.probes import LAMBDA_ENV, count_instructions, invoke_cold


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


needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None,
    reason="valgrind missing: Debian's valgrind package could not be installed (`make test` tries)",
)


@needs_valgrind
def test_an_instruction_count_is_the_span_alone_and_repeats(tmp_path: Path) -> None:
    # GIVEN two functions shipped as sourceless bytecode, as the build ships them: one whose
    # import does nothing, one whose import does a known amount of extra work
    (tmp_path / "idle_fn.py").write_text("def handler(event, context):\n    return {'ok': 1}\n")
    (tmp_path / "busy_fn.py").write_text(
        "total = sum(range(200_000))\ndef handler(event, context):\n    return {'ok': total}\n"
    )
    assert compileall.compile_dir(tmp_path, quiet=1, legacy=True)
    for source in tmp_path.glob("*.py"):
        source.unlink()
    # WHEN the bench counts each one's cold start under valgrind, the busy one twice
    idle, answer = count_instructions([tmp_path], "idle_fn.handler", {})
    busy, busy_answer = count_instructions([tmp_path], "busy_fn.handler", {})
    again, _ = count_instructions([tmp_path], "busy_fn.handler", {})
    # THEN the handlers answered; the interpreter's own start (~28 million instructions for
    # python3.11 -S -I here) is not in the count, the extra work is, and a count repeats to
    # within 1 %. Hash randomisation moves each of the two processes whose difference is the
    # count by some 50,000 to 400,000 instructions, so an import that does nothing (~0.3 million)
    # can come out a little below zero: a fresh-clone CI run on 2026-12-05 counted -101,374.
    assert answer["answer"] == {"ok": 1}
    assert busy_answer["answer"] == {"ok": sum(range(200_000))}
    assert abs(idle) < 2_000_000  # measured: ~0.3 million, once -0.1 million
    assert busy - idle > 10_000_000  # measured: ~35 million
    assert abs(again - busy) / busy < 0.01
