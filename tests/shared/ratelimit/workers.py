"""Entry point of the processes in the multi-process burst test (importable under spawn)."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from tests.shared.ratelimit.helpers import hammer, limiter_for
from tests.utils.layer_redis import layer_redis


def burst(
    uri: str, quota: int, threads: int, attempts: int, start: Barrier, out: Queue[int]
) -> None:
    """One process's part of a burst against one key; puts how many it got admitted."""
    client = layer_redis(uri)
    try:
        limiter = limiter_for(client, RATE_LIMIT_PUBLIC=quota, RATE_LIMIT_WINDOW_SECONDS=3600)
        start.wait(timeout=60)
        out.put(hammer(limiter, "203.0.113.9", threads, attempts))
    finally:
        client.close()
