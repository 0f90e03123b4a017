"""No over-admission: a concurrent burst on one key admits exactly the quota.

The window is an hour so the burst cannot straddle a window boundary for long enough to matter
(the algorithm's one documented source of extra admissions): what is counted is atomicity.
"""

from __future__ import annotations

import multiprocessing

import redis

from lucid.store import resp
from lucid_edge.local import EmbeddedRedis, free_port
from tests.shared.ratelimit.helpers import hammer, limiter_for
from tests.shared.ratelimit.workers import burst
from tests.utils.layer_redis import unreachable_redis


def test_threads_bursting_on_one_key_get_exactly_the_quota(store_redis: resp.Redis) -> None:
    limiter = limiter_for(store_redis, RATE_LIMIT_PUBLIC=100, RATE_LIMIT_WINDOW_SECONDS=3600)
    assert hammer(limiter, "203.0.113.9", threads=8, attempts=40) == 100


def test_two_processes_bursting_on_one_key_get_exactly_the_quota(
    redis_client: redis.Redis, redis_server: EmbeddedRedis
) -> None:
    # GIVEN two processes (like two edge workers), each with its own client and 4 threads
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(target=burst, args=(redis_server.uri, 100, 4, 40, start, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    admitted = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    results.close()
    results.join_thread()
    # WHEN 320 requests race for a quota of 100  THEN exactly 100 pass, whoever sent them
    assert sum(admitted) == 100


def test_the_in_memory_fallback_does_not_over_admit_either() -> None:
    # a limiter whose Redis refuses connections decides in memory, under a lock
    client = unreachable_redis(free_port())
    limiter = limiter_for(client, RATE_LIMIT_PUBLIC=100, RATE_LIMIT_WINDOW_SECONDS=3600)
    assert hammer(limiter, "203.0.113.9", threads=8, attempts=40) == 100
    client.close()
