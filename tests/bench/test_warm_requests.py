"""The warm-request bench (`make bench requests`, bench/warm.py) counts what each invocation costs
and nothing of the probe's own, repeats, and refuses a count whose invocations did not all get
the answer the case expects; each of its cases gets its answers from the built functions."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.artifact import make_writable
from bench.warm import WarmCase, measure_cases, warm_cases
from tests.utils.tied import start_redis

needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None,
    reason="valgrind missing: Debian's valgrind package could not be installed (`make test` tries)",
)

IDLE = "def handler(event, context):\n    return {'statusCode': 200}\n"
# A known extra work per request: the sum of event["work"] integers.
BUSY = (
    "def handler(event, context):\n"
    "    return {'statusCode': 200, 'body': str(sum(range(event['work'])))}\n"
)
# Answers 200 only to the If-Match of its current version, which each success moves on (as PATCH
# /sessions/{id} does), 412 otherwise.
VERSIONED = (
    "version = 1\n"
    "def handler(event, context):\n"
    "    global version\n"
    "    if event['headers']['if-match'] != f'\"{version}\"':\n"
    "        return {'statusCode': 412, 'body': 'stale'}\n"
    "    version += 1\n"
    "    return {'statusCode': 200, 'body': f'version {version}'}\n"
)


def _function(folder: Path, name: str, source: str) -> tuple[Path, ...]:
    (folder / f"{name}.py").write_text(source)
    return (folder,)


def _same(event: dict[str, Any]) -> Any:
    return lambda size: [event] * size


@needs_valgrind
def test_a_known_extra_work_per_request_is_counted_and_the_counts_repeat(tmp_path: Path) -> None:
    # GIVEN a handler that does nothing, and one that sums 40,000 or 80,000 integers per request
    idle = WarmCase("idle", _function(tmp_path, "idle_fn", IDLE), "idle_fn.handler", 200, _same({}))
    path = _function(tmp_path, "busy_fn", BUSY)
    busy = WarmCase("busy", path, "busy_fn.handler", 200, _same({"work": 40_000}))
    busier = replace(busy, name="busier", events=_same({"work": 80_000}))
    # WHEN the bench counts them (the busy one twice), one count per core at a time
    figures = measure_cases([busy, busier, busy], repeats=1, requests=20)
    (first, again), (doubled,) = figures["busy"], figures["busier"]
    nothing = idle.per_request(200)
    # THEN what the probe adds to each invocation (its loop, the call, the answer's status) is
    # small against a hello world's ~500,000 instructions (measured: 1,500-2,300, hash
    # randomisation moving each process's count by some 200,000 over the 200)
    assert 0 < nothing < 10_000
    # AND the known work is counted, in proportion: twice the integers, twice the instructions
    # (measured: 7.4 million per 40,000, 14.8 per 80,000)
    work = first - nothing
    assert work > 3_000_000
    assert abs((doubled - nothing) / work - 2) < 0.02
    # AND a count repeats to within 1 % (measured: 0.6 % over 10 requests)
    assert abs(again - first) / first < 0.01


@needs_valgrind
def test_every_invocation_gets_its_own_event_and_each_answer_is_checked(tmp_path: Path) -> None:
    # GIVEN a function that answers 200 only to its current version's If-Match, and events that
    # follow the version, a fresh sequence for each count
    path = _function(tmp_path, "versioned_fn", VERSIONED)

    def patches(size: int) -> list[dict[str, Any]]:
        return [{"headers": {"if-match": f'"{index + 1}"'}} for index in range(size)]

    ok = WarmCase("patch", path, "versioned_fn.handler", 200, patches, expect=("version 6",))
    # WHEN the bench counts 5 invocations, THEN each succeeded (the 5th moved it to version 6)
    assert ok.count(5, 5) > 0
    # WHEN every invocation sends the first version's If-Match, THEN the count is refused,
    # naming the first invocation that was not answered 200 (the second: the first was)
    stale = replace(ok, events=_same({"headers": {"if-match": '"1"'}}), expect=())
    with pytest.raises(RuntimeError, match="invocation 2 of 5 answered 412, not 200"):
        stale.count(5, 5)
    # WHEN the last answer lacks what the case expects in it, THEN the count is refused too
    with pytest.raises(RuntimeError, match=r"\['version 9'\] not in the last answer"):
        replace(ok, expect=("version 9",)).count(5, 5)


def test_each_case_of_the_bench_gets_its_answers_from_the_built_functions(tmp_path: Path) -> None:
    # GIVEN the bench's cases on the built artifact, the stores and the backend running
    # WHEN each is invoked three times in a row at full speed, as a count invokes it
    # THEN every invocation got the case's answer (each check raises otherwise): a change to the
    # signed-in path that breaks a case's events shows here, not an hour into a bench run
    with start_redis() as redis:
        try:
            with warm_cases(redis.uri, tmp_path) as cases:
                for case in cases:
                    case.check(3)
                # AND each count is given a token issued as it starts: a run takes longer than
                # an access token lives (15 minutes), and every signed-in case would be refused
                (me,) = [case for case in cases if case.name == "users GET /users/me"]
                first = me.events(1)[0]["requestContext"]["authorizer"]["lambda"]
                time.sleep(1.1)  # `exp` counts whole seconds
                later = me.events(1)[0]["requestContext"]["authorizer"]["lambda"]
        finally:
            make_writable(tmp_path)
    assert len(cases) == 11
    assert later["exp"] > first["exp"]
    assert later["jti"] != first["jti"]
