"""The limiter's script runner: EVALSHA on a kept connection per thread, against real Redis."""

from __future__ import annotations

import threading

import pytest
import redis

from lucid.config import Settings
from lucid.ratelimit.script import ScriptRunner
from lucid.store import resp
from lucid.store.redis_client import build_redis
from tests.utils.tied import start_redis

COUNTER = "return redis.call('INCR', KEYS[1]) + tonumber(ARGV[1])"


def test_a_flushed_script_is_loaded_again(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    # GIVEN a runner that has run its script once
    runner = ScriptRunner(store_redis, COUNTER)
    assert runner(["n"], [0]) == 1
    # WHEN Redis forgets every script (a restart or SCRIPT FLUSH)
    redis_client.script_flush()
    # THEN the next call still runs it, and later calls are EVALSHA again
    assert runner(["n"], [10]) == 12
    assert redis_client.script_exists(runner._sha) == [True]


def test_redis_down_raises_and_redis_back_is_used_again() -> None:
    server = start_redis()
    client = build_redis(Settings(REDIS_URI=server.uri))
    runner = ScriptRunner(client, COUNTER)
    try:
        assert runner(["n"], [0]) == 1
        server.stop()
        with pytest.raises(resp.ConnectionError):
            runner(["n"], [0])
        with start_redis(port=server.port):
            assert runner(["n"], [0]) == 1  # a fresh server: the counter starts again
    finally:
        client.connection_pool.disconnect()


def test_a_connection_that_died_with_an_earlier_server_is_replaced_unnoticed() -> None:
    # GIVEN a thread whose kept connection served a Redis that has since restarted
    server = start_redis()
    client = build_redis(Settings(REDIS_URI=server.uri))
    runner = ScriptRunner(client, COUNTER)
    try:
        assert runner(["n"], [0]) == 1
        server.stop()
        with start_redis(port=server.port):
            # WHEN the thread runs the script again THEN it simply works (no error to count)
            assert runner(["n"], [0]) == 1
    finally:
        client.connection_pool.disconnect()


def test_threads_never_mix_up_their_replies(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    # Each thread keeps its own connection: a shared one would hand one thread another's reply.
    runner = ScriptRunner(store_redis, COUNTER)
    replies: list[int] = []

    def work() -> None:
        for _ in range(20):
            replies.append(runner(["shared"], [0]))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redis_client.get("shared") == b"60"
    assert sorted(replies) == list(range(1, 61))
