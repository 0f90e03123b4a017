"""Cold start of the built artifact, as Lambda pays it.

`sam build` output (bench/artifact.py), every function in a fresh `python -S -I -B` with a
read-only copy of its task root and of the layer as the only things on sys.path: import of the
handler plus its first invocation of a route that needs no network. Beside them, in the same
rounds, a hello-world FastAPI + Mangum function built by the same make rule. Rounds alternate
all candidates; figures are medians. (The build ships third-party code as sourceless bytecode,
so an artifact stripped of its __pycache__ folders no longer stands for a build without
bytecode: that comparison, 2.0-2.5x slower, is in the README and needs BENCH_COMPARE_BUILD.)

Targets (issue 9): every FastAPI function at most 1.3x the hello-world function, the authorizer
at most 0.6x, the layer at most 30 MB unzipped.

`BENCH_COMPARE_BUILD=/path/to/.aws-sam/build` adds another `sam build` output (e.g. main's) to
the same rounds, as it is; `BENCH_COMPARE_HELLO=/path/to/other/bench/lambda/hello` gives it the
hello world of its own tree (needed when the two lock different FastAPI/pydantic versions).

Instructions: the same candidates under valgrind (bench/probes.py `count_instructions`), the
user-space instructions of import plus first call. A count repeats within ~0.5 % whatever the
machine is doing, where one CPU time moves by +-25 % on this shared host: it is the steady figure
for a change's effect and for the ratio to hello world, short of what it leaves out (cache misses,
page faults, the kernel reading the files). BENCH_INSTRUCTION_REPEATS=0 skips it (~1.5 min on an
idle 2-core machine, ~8 at a load average of 4).
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.artifact import (
    ROOT,
    Artifact,
    load_artifact,
    make_build,
    make_writable,
    readonly_copy,
    sam_build,
    tree_size,
    zipped_size,
)
from bench.coldstart_real import REAL_REQUESTS, real_event, stores
from bench.coldstart_real import print_table as print_real_table
from bench.probes import (
    Probe,
    count_instructions,
    event_for,
    import_profile,
    invoke_cold,
    status_of,
)

REPEATS = int(os.environ.get("BENCH_COLDSTART_REPEATS", "5"))
INSTRUCTION_REPEATS = int(os.environ.get("BENCH_INSTRUCTION_REPEATS", "3"))
EXTRA_BUILDS = ROOT / ".aws-sam" / "bench"
HELLO = "HelloFunction"
HELLO_PROBE = Probe("GET", "/health", 200)
FASTAPI_TARGET, AUTHORIZER_TARGET, LAYER_TARGET_MB = 1.3, 0.6, 30.0
# What API Gateway and Lambda set while X-Ray tracing is active.
XRAY_ENV = {
    "_X_AMZN_TRACE_ID": (
        "Root=1-5e66d96f-7491f09xmpl79d18acf3d050;Parent=53995c3f42cd8ad8;Sampled=1"
    ),
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}


@dataclass(frozen=True)
class Candidate:
    """One function of one build variant, ready to be cold-started."""

    variant: str
    function: str
    path: tuple[Path, ...]
    handler: str
    probe: Probe
    tracer: bool = False
    # Another event than the probe's own, and variables of its own (bench/coldstart_real.py).
    event: dict[str, Any] | None = field(default=None, compare=False)
    env: tuple[tuple[str, str], ...] = ()

    def run(self, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
        """One cold start; refuses a wrong answer (a fast failure is not a cold start)."""
        report = invoke_cold(
            self.path,
            self.handler,
            self.event or event_for(self.probe),
            tracer=self.tracer,
            extra_env={**dict(self.env), **(extra_env or {})},
        )
        return self._checked(report)

    def instructions(self) -> int:
        """The instructions of one cold start (import plus first call); refuses a wrong answer."""
        count, report = count_instructions(
            self.path, self.handler, self.event or event_for(self.probe), dict(self.env)
        )
        self._checked(report)
        return count

    def _checked(self, report: dict[str, Any]) -> dict[str, Any]:
        if status_of(report["answer"], self.probe) != self.probe.status:
            raise RuntimeError(f"{self.function} ({self.variant}) answered {report['answer']}")
        return report


def _candidates(
    variant: str, artifact: Artifact, hello: Path, tmp: Path, *, bytecode: bool
) -> Iterator[Candidate]:
    layer = readonly_copy(artifact.layer, tmp / variant / "layer" / "python", bytecode=bytecode)
    hello_root = readonly_copy(hello, tmp / variant / HELLO, bytecode=bytecode)
    yield Candidate(variant, HELLO, (hello_root,), "app.handler", HELLO_PROBE)
    for function in artifact.functions:
        root = readonly_copy(function.task_root, tmp / variant / function.name, bytecode=bytecode)
        yield Candidate(variant, function.name, (root, layer), function.handler, function.probe)


def _rounds(
    candidates: Sequence[Candidate], extra_env: dict[str, str] | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for _ in range(REPEATS):
        for candidate in candidates:
            runs[candidate.variant, candidate.function].append(candidate.run(extra_env))
    return {
        key: {
            "import_ms": statistics.median(r["import_ms"] for r in reports),
            "total_ms": statistics.median(r["total_ms"] for r in reports),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in reports),
            "tracer_ms": statistics.median(r["tracer_ms"] for r in reports),
            "compiled": statistics.median(len(r["compiled_from_source"]) for r in reports),
            "modules": statistics.median(r["modules"] for r in reports),
            # Round by round, for the paired ratio (_paired).
            "cpu_rounds": [r["cpu_ms"] for r in reports],
        }
        for key, reports in runs.items()
    }


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The median of `values` and a distribution-free interval of about 95 % around it.

    The interval runs between the k-th smallest and the k-th largest value, k the largest rank
    with P(Binomial(n, 1/2) < k) <= 2.5 %: the order-statistic interval of a median, which
    assumes nothing of the noise's shape. It covers the true median with probability at least
    95 % from n=6 on (n=9: 2nd to 8th, 96 %; n=25: 8th to 18th, 96 %); n=5 gives min to max, 94 %.
    """
    ordered, n = sorted(values), len(values)
    below, k = 0.0, 0
    while k < n // 2:
        below += math.comb(n, k) / 2**n  # P(Binomial(n, 1/2) = k)
        if below > 0.025:
            break
        k += 1
    k = max(k, 1)
    return statistics.median(ordered), ordered[k - 1], ordered[n - k]


def _paired(
    figures: dict[tuple[str, str], dict[str, Any]], variant: str, function: str
) -> tuple[float, float, float]:
    """CPU of `function` over hello world's in the same round, median and interval.

    On a shared machine the speed drifts from one minute to the next (hello world's median
    moved from 420 to 520 ms between two runs on an idle machine); a ratio taken within one
    round, seconds apart, cancels that drift where the ratio of two medians does not.
    """
    own, hello = figures[variant, function]["cpu_rounds"], figures[variant, HELLO]["cpu_rounds"]
    return median_interval([mine / theirs for mine, theirs in zip(own, hello, strict=True)])


def _target(function: str, authorizer: str) -> float | None:
    if function == HELLO:
        return None
    return AUTHORIZER_TARGET if function == authorizer else FASTAPI_TARGET


def _print_table(
    figures: dict[tuple[str, str], dict[str, Any]], variants: Sequence[str], authorizer: str
) -> None:
    functions = list(dict.fromkeys(function for _, function in figures))
    header = f"{'function':20s}" + "".join(
        f" | {variant + ': import':>18s} {'+1st call':>9s} {'x hello':>7s}"
        f" {'cpu':>6s} {'x hello':>7s} {'paired [interval]':>21s} {'compiled':>8s}"
        for variant in variants
    )
    print(header)
    print("-" * len(header))
    for function in functions:
        line = f"{function:20s}"
        for variant in variants:
            own = figures.get((variant, function))
            if own is None:
                line += f" | {'':>18s} {'':>9s} {'':>7s} {'':>6s} {'':>7s} {'':>21s} {'':>8s}"
                continue
            ratio = own["total_ms"] / figures[variant, HELLO]["total_ms"]
            cpu_ratio = own["cpu_ms"] / figures[variant, HELLO]["cpu_ms"]
            paired, low, high = _paired(figures, variant, function)
            target = _target(function, authorizer)
            mark = "" if target is None else ("  " if ratio <= target else " !")
            cpu_mark = "" if target is None else ("  " if cpu_ratio <= target else " !")
            paired_mark = "" if target is None else ("  " if paired <= target else " !")
            line += (
                f" | {own['import_ms']:15.0f} ms {own['total_ms']:6.0f} ms {ratio:5.2f}x{mark}"
                f" {own['cpu_ms']:3.0f} ms {cpu_ratio:5.2f}x{cpu_mark}"
                f" {paired:5.2f}x [{low:4.2f}-{high:4.2f}]{paired_mark} {own['compiled']:8.0f}"
            )
        print(line)
    print(
        f"(x hello: import+first call / hello-world's, same variant, in wall-clock time and in"
        f" CPU time (steadier on a busy machine); paired: the median of the CPU ratios taken"
        f" round by round, seconds apart, with its ~95 % order-statistic interval (the figure"
        f" to quote on a shared machine); '!' misses its target: FastAPI <= {FASTAPI_TARGET}x,"
        f" authorizer <= {AUTHORIZER_TARGET}x. compiled: modules compiled from source at cold"
        " start)"
    )


def _instruction_counts(
    candidates: Sequence[Candidate],
) -> dict[tuple[str, str], list[int]]:
    """INSTRUCTION_REPEATS counts per candidate, one per core at a time: a count does not depend
    on what else runs, so they need not take turns as the timed rounds do."""
    jobs = [candidate for _ in range(INSTRUCTION_REPEATS) for candidate in candidates]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = list(pool.map(Candidate.instructions, jobs))
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    for candidate, count in zip(jobs, counts, strict=True):
        found[candidate.variant, candidate.function].append(count)
    return dict(found)


def _print_instructions(
    counts: dict[tuple[str, str], list[int]], variants: Sequence[str], authorizer: str
) -> dict[str, dict[str, float]]:
    print(
        f"\ninstructions executed (valgrind), import + first call, median of"
        f" {INSTRUCTION_REPEATS} fresh processes:"
    )
    header = f"{'function':20s}" + "".join(
        f" | {variant + ': instructions':>24s} {'x hello':<8s} {'spread':>7s}"
        for variant in variants
    )
    print(header)
    print("-" * len(header))
    report: dict[str, dict[str, float]] = {}
    for function in dict.fromkeys(function for _, function in counts):
        line = f"{function:20s}"
        for variant in variants:
            own = counts.get((variant, function))
            if own is None:
                line += f" | {'':>24s} {'':>8s} {'':>7s}"
                continue
            median = statistics.median(own)
            ratio = median / statistics.median(counts[variant, HELLO])
            spread = (max(own) - min(own)) / median
            target = _target(function, authorizer)
            mark = " !" if target is not None and ratio > target else "  "
            line += f" | {median / 1e6:22.1f} M {ratio:5.2f}x{mark} {spread:7.2%}"
            report[f"{variant} {function}"] = {"instructions": median, "x_hello": ratio}
        print(line)
    print(
        "(user-space instructions, the span's count less that of the same process stopped before"
        " the import; x hello: over hello-world's, same variant; spread: (max - min) / median;"
        f" '!' past the target of the CPU-time ratio: FastAPI <= {FASTAPI_TARGET}x,"
        f" authorizer <= {AUTHORIZER_TARGET}x)"
    )
    return report


def _layer_sizes(label: str, layer_root: Path, tmp: Path) -> dict[str, float]:
    unzipped = tree_size(layer_root) / 1e6
    zipped = zipped_size(layer_root, tmp / f"{label}.zip") / 1e6
    flag = "" if unzipped <= LAYER_TARGET_MB else f"  (target <= {LAYER_TARGET_MB:.0f} MB)"
    print(f"layer ({label}): {unzipped:.1f} MB unzipped, {zipped:.1f} MB zipped{flag}")
    return {"unzipped_mb": unzipped, "zipped_mb": zipped}


def _same_framework(hello: Path, layer: Path) -> None:
    """Refuse a comparison against a hello-world built on other FastAPI/pydantic versions."""
    names = ("fastapi", "starlette", "pydantic", "pydantic_core", "mangum")

    def versions(root: Path) -> dict[str, str]:
        found = {}
        for info in root.glob("*.dist-info"):
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
            found[name.lower()] = version
        return {name: found.get(name, "?") for name in names}

    if versions(hello) != versions(layer):
        raise RuntimeError(f"hello-world {versions(hello)} vs layer {versions(layer)}")


def _tracer(artifact: Artifact, tmp: Path) -> dict[str, object]:
    """What a module-level Powertools Tracer (X-Ray SDK, auto-patch) adds to a cold start, with
    boto3/botocore importable as in Lambda's runtime (the SDK patches what it can import)."""
    xray = make_build(ROOT / "bench" / "lambda" / "xray", "XRayLayer", EXTRA_BUILDS)
    boto3 = make_build(ROOT / "bench" / "lambda" / "boto3", "Boto3Layer", EXTRA_BUILDS)
    xray_copy = readonly_copy(xray / "python", tmp / "tracer" / "xray")
    boto3_copy = readonly_copy(boto3 / "python", tmp / "tracer" / "boto3")
    layer = readonly_copy(artifact.layer, tmp / "tracer" / "layer")
    candidates = []
    for function in artifact.functions:
        root = readonly_copy(function.task_root, tmp / "tracer" / function.name)
        path = (root, layer, xray_copy, boto3_copy)
        for with_tracer in (False, True):
            variant = "Tracer()" if with_tracer else "no Tracer"
            candidates.append(
                Candidate(
                    variant, function.name, path, function.handler, function.probe, with_tracer
                )
            )
    figures = _rounds(candidates, XRAY_ENV)
    print(f"\nPowertools Tracer at cold start (X-Ray SDK layer {tree_size(xray) / 1e6:.1f} MB):")
    result: dict[str, object] = {}
    for function in artifact.functions:
        plain, traced = figures["no Tracer", function.name], figures["Tracer()", function.name]
        added = traced["total_ms"] - plain["total_ms"]
        print(
            f"{function.name:20s} import+first call {plain['total_ms']:6.0f} ms -> "
            f"{traced['total_ms']:6.0f} ms with Tracer: +{added:.0f} ms "
            f"(Tracer() itself {traced['tracer_ms']:.0f} ms)"
        )
        result[function.name] = {"without": plain, "with": traced, "added_ms": added}
    result["xray_layer_mb"] = tree_size(xray) / 1e6
    return result


def _first_real_requests(
    candidates: Sequence[Candidate], variants: Sequence[str], redis_uri: str
) -> dict[str, object]:
    """bench/coldstart_real.py: what the first real request of a cold start costs."""
    wanted = dict(REAL_REQUESTS)
    with stores(redis_uri) as (env, context, token):
        real = [
            candidate
            if candidate.function == HELLO
            else replace(
                candidate,
                probe=wanted[candidate.function],
                event=real_event(wanted[candidate.function], token, context),
                env=tuple(env.items()),
            )
            for candidate in candidates
            if candidate.function == HELLO or candidate.function in wanted
        ]
        figures = _rounds(real)
    print_real_table(figures, variants, HELLO)
    return {f"{v} {f}": fig for (v, f), fig in figures.items()}


def measure(env: dict[str, str]) -> dict[str, object]:
    """The cold-start table, the first real requests, the layer's size and the Tracer's cost,
    all from one run. The probes run with LAMBDA_ENV alone (nothing of the bench's servers is
    reachable); the first real requests reach the bench's Redis (`env`) and a MongoDB."""
    artifact = sam_build()
    hello = make_build(ROOT / "bench" / "lambda" / "hello", HELLO, EXTRA_BUILDS)
    _same_framework(hello, artifact.layer)
    compare = os.environ.get("BENCH_COMPARE_BUILD")
    (authorizer,) = [f.name for f in artifact.functions if f.probe.authorizer]
    report: dict[str, object] = {"repeats": REPEATS}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        try:
            candidates = list(_candidates("bytecode", artifact, hello, tmp, bytecode=True))
            variants = ["bytecode"]
            if compare:
                # As it is; beside a hello-world with bytecode only if that build ships any.
                before = load_artifact(Path(compare))
                shipped = next(before.layer.rglob("__pycache__"), None) is not None
                before_hello = hello
                if other_hello := os.environ.get("BENCH_COMPARE_HELLO"):
                    before_hello = make_build(Path(other_hello), HELLO, EXTRA_BUILDS / "compared")
                    _same_framework(before_hello, before.layer)
                candidates += _candidates("compared", before, before_hello, tmp, bytecode=shipped)
                variants.append("compared")
            print(f"built artifact, read-only, median of {REPEATS} fresh processes:")
            figures = _rounds(candidates)
            _print_table(figures, variants, authorizer)
            report["cold_start"] = {
                f"{v} {f}": fig | {"paired_cpu_ratio": _paired(figures, v, f)}
                for (v, f), fig in figures.items()
            }
            if INSTRUCTION_REPEATS and shutil.which("valgrind"):
                report["instructions"] = _print_instructions(
                    _instruction_counts(candidates), variants, authorizer
                )
            elif INSTRUCTION_REPEATS:
                print("\nvalgrind is not installed: no instruction counts (make bench installs it)")
            report["first_real_request"] = _first_real_requests(
                candidates, variants, env["REDIS_URI"]
            )
            report["layer"] = {"bytecode": _layer_sizes("bytecode", artifact.layer.parent, tmp)}
            if compare:
                report["layer"]["compared"] = _layer_sizes(  # type: ignore[index]
                    "compared", load_artifact(Path(compare)).layer.parent, tmp
                )
            misses = [
                c
                for c in candidates
                if c.variant == "bytecode"
                and (target := _target(c.function, authorizer)) is not None
                and _paired(figures, c.variant, c.function)[0] > target
            ]
            for candidate in misses:
                costs = import_profile(
                    candidate.path, candidate.handler, event_for(candidate.probe)
                )
                profile = ", ".join(f"{name} {ms:.0f}" for name, ms in costs)
                print(f"{candidate.function} imports by package (ms, self time): {profile}")
            report["tracer"] = _tracer(artifact, tmp)
        finally:
            make_writable(tmp)
    return report
