"""One cold start of a built function, as Lambda's python3.11 runtime pays it.

Run by bench/probes.py as `python3.11 -S -I -B lambda_probe.py < CONFIG_JSON`: no site-packages,
no PYTHON* variables, no bytecode written (Lambda's /var/task and /opt are read-only), and
nothing on sys.path but the standard library and the folders CONFIG names (the task root, then
the layer's python/ folder, in the order Lambda puts /var/task and /opt/python). Standard library
only: this file is not on the path it measures.

It imports the handler, invokes it once with CONFIG's event, and prints one line
`LAMBDA-PROBE {json}` with the times, the answer, and every module of the artifact that Python had
to compile from source because no usable .pyc was there.

For counting instructions (bench/probes.py `count_instructions`) CONFIG's `brief` keeps the report
to the answer, so that what runs after the span is the same for every function, and `stop` ends the
probe just before the import: the same process without the span, whose count is subtracted.

For warm requests (bench/probes.py `count_warm_instructions`) CONFIG's `events` and `n`: the
handler is invoked with the first `n` events in turn, and the report holds what each answered
(its `statusCode`, or an authorizer's `isAuthorized`) and the last answer. The loop is all the
probe adds per invocation (~1,000 instructions, tests/bench/test_warm_requests.py).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from importlib import _bootstrap_external
from typing import Any

MARKER = "LAMBDA-PROBE "

compiled_from_source: list[str] = []
_source_to_code = _bootstrap_external.SourceLoader.source_to_code


def _recording_source_to_code(self: Any, data: bytes, path: str, **kwargs: Any) -> Any:
    # Reached only when the import system found no valid .pyc for `path`.
    compiled_from_source.append(path)
    return _source_to_code(self, data, path, **kwargs)


# Replacing the method on the class is the point: every loader's compilation goes through it.
_bootstrap_external.SourceLoader.source_to_code = _recording_source_to_code  # type: ignore[method-assign,assignment]


class LambdaContext:
    """The attributes of the context object Lambda's runtime passes to a Python handler."""

    function_name = "probe"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:probe"
    # A string, as awslambdaric's LambdaContext reads it: os.environ.get(
    # "AWS_LAMBDA_FUNCTION_MEMORY_SIZE") (notes/aws-facts.md, rv-edge section).
    memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/probe"
    log_stream_name = "2026/12/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        """Time left before the function's timeout."""
        return 29_000


def _as_function(handler: Any) -> Any:
    # capture_lambda_handler wants a function (it reads __name__); Mangum is an instance.
    def lambda_handler(event: Any, context: Any) -> Any:
        return handler(event, context)

    return lambda_handler


def main() -> None:
    """Import, invoke once, report."""
    # On standard input: a warm-request count's events are too long for one argument (Linux's
    # MAX_ARG_STRLEN, 128 KB).
    config = json.loads(sys.stdin.read())
    sys.path[:0] = config["path"]
    module_name, attribute = config["handler"].rsplit(".", 1)
    if config.get("stop"):
        print(MARKER + json.dumps({"answer": None}), flush=True)
        return
    started, cpu_started = time.perf_counter(), time.process_time()
    tracer = None
    if config.get("tracer"):
        # As a function would: a module-level Powertools Tracer (X-Ray SDK, auto-patching).
        from aws_lambda_powertools import Tracer

        tracer = Tracer()
    traced = time.perf_counter()
    handler = getattr(__import__(module_name), attribute)
    if tracer is not None:
        handler = tracer.capture_lambda_handler(_as_function(handler))
    imported = time.perf_counter()
    if "events" in config:
        context = LambdaContext()
        answers: list[Any] = []
        answer: Any = None
        for event in config["events"][: config["n"]]:
            answer = handler(event, context)
            answers.append(answer.get("statusCode", answer.get("isAuthorized")))
        print(MARKER + json.dumps({"answers": answers, "answer": answer}), flush=True)
        return
    answer = handler(config["event"], LambdaContext())
    served, cpu_served = time.perf_counter(), time.process_time()
    if config.get("brief"):
        print(MARKER + json.dumps({"answer": answer}), flush=True)
        return
    report = {
        "tracer_ms": (traced - started) * 1000,
        "import_ms": (imported - started) * 1000,
        "total_ms": (served - started) * 1000,
        # CPU time of the same span: what a busy shared machine disturbs least (no waiting)
        "cpu_ms": (cpu_served - cpu_started) * 1000,
        "answer": answer,
        "compiled_from_source": compiled_from_source,
        "modules": len(sys.modules),
        # the collector as the function left it after its cold start (lucid.coldstart)
        "gc": {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()},
        "packages": sorted({name.partition(".")[0] for name in sys.modules}),
        "module_names": sorted(sys.modules),
        "flags": {
            "optimize": sys.flags.optimize,
            "dont_write_bytecode": sys.dont_write_bytecode,
            "pycache_prefix": sys.pycache_prefix,
            "no_site": sys.flags.no_site,
            "isolated": sys.flags.isolated,
        },
        "sys_path": sys.path,
    }
    print(MARKER + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
