"""`lucid serve` in a subprocess with its own settings: for end-to-end tests whose settings
differ from the test process's (rate limits on, other backends, another Redis).

    with subprocess_edge({"RATE_LIMIT_ENABLED": "true"}, {"ThrottlingBurstLimit": "5"}) as edge:
        httpx.get(edge.url + "/auth/status")

The edge serves infra/template.yaml with two worker processes on a free port. It inherits the
test session's environment (STAGE=local, the session Redis, the JWT key) with `env` on top;
MONGODB_URI is dropped so the edge starts the in-memory MongoDB that all its workers share.
Its output goes to a file (a pipe nobody reads would block the workers once full) and is shown
when the edge fails to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from lucid_edge.local import free_port
from tests.utils.redact import shown
from tests.utils.tied import tied
from tests.utils.wallets import Wallet

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
LUCID = Path(sys.executable).parent / "lucid"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
# Answered by the edge itself (no route): probing it costs no function call and no token.
_PROBE_PATH = "/__lucid_e2e_probe__"


@dataclass
class SubprocessEdge:
    """A running `lucid serve`: its origin (`url`), process and API stage."""

    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    stage: str = "$default"

    @property
    def base_url(self) -> str:
        """Where the API's routes start: `url` on `$default`, `url/<stage>` on a named stage."""
        return self.url if self.stage == "$default" else f"{self.url}/{self.stage}"

    def client(self, **kwargs: Any) -> httpx.Client:
        """A new HTTP client on the API's base URL (one keep-alive connection: one worker)."""
        return httpx.Client(base_url=self.base_url, **{"timeout": 10, **kwargs})

    def output(self) -> str:
        """What the edge printed so far (stdout and stderr)."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    # An earlier in-process `lucid serve` may have left its own (now stopped) MongoDB URI or
    # edge settings in this process's environment: the edge gets only what it is told.
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k != "MONGODB_URI" and not k.startswith("LUCID_EDGE_")
    }
    return {**inherited, **env}


def _wait_until_serving(edge: SubprocessEdge) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with edge.client(timeout=1) as client:
        while time.monotonic() < deadline:
            if edge.process.poll() is not None:
                raise AssertionError(f"lucid serve exited at start:\n{edge.output()[-3000:]}")
            try:
                if client.get(_PROBE_PATH).status_code == 404:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
    raise AssertionError(f"lucid serve did not answer in time:\n{edge.output()[-3000:]}")


def wait_until_answering(url: str, process: subprocess.Popen[Any]) -> None:
    """Poll `url` until the server behind it answers at all; fail if `process` exits first."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("lucid serve did not start")


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group of `process` (started with start_new_session=True) if it still
    runs, and reap it: a test's way out that never waits on an edge that missed its signal.
    Only while `process` is not reaped is its PID sure to still name its group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        kill_group(process)


@contextmanager
def subprocess_edge(
    env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    *,
    workers: int = 2,
    template: Path = TEMPLATE,
    stage: str = "$default",
) -> Iterator[SubprocessEdge]:
    """Serve `template` with `env` and `--parameter-overrides` until the block ends (SIGTERM);
    `stage` is the real template's API stage (ApiStageName)."""
    port = free_port()
    if stage != "$default":
        overrides = {**(overrides or {}), "ApiStageName": stage}
    args = [str(LUCID), "serve", "--template", str(template), "--port", str(port)]
    args += ["--workers", str(workers)]
    if overrides:
        args += ["--parameter-overrides", *(f"{k}={v}" for k, v in overrides.items())]
    with tempfile.NamedTemporaryFile(prefix="lucid-edge-", suffix=".log") as log:
        process = subprocess.Popen(
            tied(args),  # ends with this test process, whatever stops it (tests.utils.tied)
            cwd=ROOT,
            env=_environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a stuck worker can be killed with its group
        )
        edge = SubprocessEdge(f"http://127.0.0.1:{port}", process, log, stage)
        try:
            _wait_until_serving(edge)
            yield edge
        finally:
            _stop(process)
        # A clean run stops cleanly: exit code 0 and no traceback from any worker.
        assert process.returncode == 0, edge.output()[-3000:]
        assert "Traceback" not in edge.output(), edge.output()[-3000:]


def token_pair(client: httpx.Client, wallet: Wallet) -> dict[str, Any]:
    """Sign `wallet` in over HTTP (/auth/challenge, then /auth/login); the token pair."""
    challenge = client.post("/auth/challenge", json={"address": wallet.address})
    assert challenge.status_code == 200, shown(challenge)
    message = challenge.json()["message"]
    body = {"address": wallet.address, "message": message, "signature": wallet.sign(message)}
    login = client.post("/auth/login", json=body)
    assert login.status_code == 200, shown(login)
    pair: dict[str, Any] = login.json()
    return pair


def sign_in(client: httpx.Client, wallet: Wallet) -> str:
    """Sign `wallet` in over HTTP; its access token."""
    token: str = token_pair(client, wallet)["access_token"]
    return token
