"""`lucid serve` as a user runs it: a subprocess with two worker processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from lucid_edge.cli import main
from lucid_edge.local import free_port
from lucid_edge.server import (
    ENV_BUCKETS,
    ENV_CONCURRENCY,
    ENV_PARAMETERS,
    ENV_RELOAD,
    ENV_SLOTS,
    ENV_TEMPLATE,
)
from tests.e2e.subprocess_edge import kill_group, wait_until_answering
from tests.edge.harness import FIXTURES
from tests.utils.tied import tied

pytestmark = pytest.mark.e2e
LUCID = Path(sys.executable).parent / "lucid"


def test_serve_with_two_workers_shares_the_throttle_and_stops_cleanly(
    request: pytest.FixtureRequest,
) -> None:
    port = free_port()
    unset = ("REDIS_URI", "MONGODB_URI", "JWT_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    process = subprocess.Popen(
        tied([str(LUCID), "serve", "--template", str(FIXTURES / "throttled.yaml"),
              "--port", str(port), "--workers", "2", "--concurrency", "2"]),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    # Should it miss SIGTERM, the test fails at its timeout and the edge goes with its group.
    request.addfinalizer(lambda: kill_group(process))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/nowhere", process)
        # GIVEN burst 3 for the stage WHEN 8 requests arrive on fresh connections (any worker)
        statuses = []
        for _ in range(8):
            response = httpx.get(f"{url}/stage", headers={"Connection": "close"})
            statuses.append(response.status_code)
        # THEN exactly 3 pass across both workers and the rest are 429
        assert sorted(statuses) == [200] * 3 + [429] * 5
        assert httpx.get(f"{url}/stage").json() == {"message": "Too Many Requests"}
        own = [httpx.get(f"{url}/own").status_code for _ in range(2)]
        assert own == [200, 429]  # the route's own RouteSettings
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out
    assert ", 2 workers, up to 2 concurrent invocations each)" in out
    assert "GET /stage" in out
    assert "FaultyFunction" in out
    assert "JWT_SECRET_KEY is unset" in err
    assert re.search(r"in-memory MongoDB at mongodb://127.0.0.1:\d+/.*NOTHING IS PERSISTED", out)
    found = re.search(r"embedded Redis at redis://127.0.0.1:(\d+)", out)
    assert found is not None
    with pytest.raises(ConnectionRefusedError):  # the embedded Redis stopped with the workers
        socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=1).close()


def test_serve_in_process_with_one_worker_until_sigint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no Redis and no JWT secret configured (the parent provides both)
    monkeypatch.delenv("REDIS_URI")
    monkeypatch.delenv("JWT_SECRET_KEY")
    # serve exports MONGODB_URI for its workers; undo it so later edges do not inherit a dead one
    monkeypatch.delenv("MONGODB_URI", raising=False)
    # ... and AUTH_SERVICE_URL (unset in the session: set first so that teardown unsets it again)
    monkeypatch.setenv("AUTH_SERVICE_URL", "")
    monkeypatch.delenv("AUTH_SERVICE_URL")
    for name in (ENV_TEMPLATE, ENV_PARAMETERS, ENV_CONCURRENCY, ENV_BUCKETS, ENV_SLOTS, ENV_RELOAD):
        monkeypatch.setenv(name, "")
    port = free_port()
    seen: list[int] = []

    def stop_when_serving() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not seen:
            try:
                # Only a refused connection (not serving yet) is tried again: a request that
                # reached the edge has spent the route's one-request burst, so a read timeout
                # (a slow first invocation under load) must not be followed by a second request,
                # which would see 429.
                seen.append(httpx.get(f"http://127.0.0.1:{port}/own", timeout=30).status_code)
            except httpx.ConnectError:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    stopper = threading.Thread(target=stop_when_serving)
    stopper.start()
    template = str(FIXTURES / "throttled.yaml")
    code = main(["serve", "--template", template, "--port", str(port), "--workers", "1"])
    stopper.join()
    assert code == 0
    assert seen == [200]
    assert ", 1 worker, up to 32 concurrent invocations each)" in capsys.readouterr().out
    assert os.environ["REDIS_URI"].startswith("redis://127.0.0.1:")
    assert os.environ["AUTH_SERVICE_URL"] == f"http://127.0.0.1:{port}"
