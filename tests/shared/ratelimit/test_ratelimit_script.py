"""The limiter's script runner: EVALSHA on a kept connection per thread, against real Redis."""

from __future__ import annotations

import threading

import pytest
import redis

from lucid.config import Settings
from lucid.embedded import start_redis
from lucid.ratelimit.script import ScriptRunner
from lucid.redis_client import build_redis

COUNTER = "return redis.call('INCR', KEYS[1]) + tonumber(ARGV[1])"


def test_a_flushed_script_is_loaded_again(redis_client: redis.Redis) -> None:
    # GIVEN a runner that has run its script once
    runner = ScriptRunner(redis_client, COUNTER)
    assert runner(["n"], [0]) == 1
    # WHEN Redis forgets every script (a restart or SCRIPT FLUSH)
    redis_client.script_flush()
    # THEN the next call still runs it, and later calls are EVALSHA again
    assert runner(["n"], [10]) == 12
    assert redis_client.script_exists(runner._sha) == [True]


def test_a_dead_connection_fails_once_then_a_new_one_is_dialled() -> None:
    server = start_redis()
    client = build_redis(Settings(REDIS_URI=server.uri))
    runner = ScriptRunner(client, COUNTER)
    try:
        assert runner(["n"], [0]) == 1
        server.stop()
        with pytest.raises(redis.ConnectionError):
            runner(["n"], [0])
        with start_redis(port=server.port):
            assert runner(["n"], [0]) == 1  # a fresh server: the counter starts again
    finally:
        client.connection_pool.disconnect()


def test_each_thread_keeps_its_own_connection(redis_client: redis.Redis) -> None:
    runner = ScriptRunner(redis_client, COUNTER)
    before = len(redis_client.client_list())

    def work() -> None:
        for _ in range(20):
            runner(["shared"], [0])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redis_client.get("shared") == b"60"
    assert len(redis_client.client_list()) - before == 3
