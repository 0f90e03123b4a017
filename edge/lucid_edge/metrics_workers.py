"""The workers' side of the edge's metrics: the directory prometheus-client's multiprocess
mode writes to, and a uvicorn supervisor that tells it which workers are gone.

`lucid serve` creates the directory and exports PROMETHEUS_MULTIPROC_DIR before any worker
starts (the library picks its mode when a worker first imports it), marks each worker uvicorn
loses or replaces as dead (its gauges stop counting; its counters stay, as Prometheus expects
of counters), and removes the directory with its files at exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead
from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from lucid_edge.metrics import ENV_DIRECTORY

__all__ = ["WorkerSupervisor", "mark_dead", "multiprocess_directory"]

# uvicorn's own logger: its lines go out as JSON on stdout (lucid_edge.logs.uvicorn_log_config).
_log = logging.getLogger("uvicorn.error")


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """A fresh directory for the workers' metric files, exported as PROMETHEUS_MULTIPROC_DIR
    for the duration (the parent's value restored after); removed with its files at exit."""
    directory = Path(tempfile.mkdtemp(prefix="lucid-metrics-"))
    previous = os.environ.get(ENV_DIRECTORY)
    os.environ[ENV_DIRECTORY] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(ENV_DIRECTORY, None)
        else:
            os.environ[ENV_DIRECTORY] = previous
        shutil.rmtree(directory, ignore_errors=True)


def mark_dead(pid: int, directory: Path) -> None:
    """A worker is gone: its gauges stop counting (its counters stay, as Prometheus expects)."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class WorkerSupervisor(Multiprocess):
    """uvicorn's supervisor, marking each worker it replaces or loses as dead for the metrics
    (a crashed or hung worker is restarted by uvicorn: its files stay in the directory), and
    giving up when workers keep dying.

    uvicorn 0.55.0 replaces a worker that died or stopped answering its health check, every
    time, except one that exited with STARTUP_FAILURE (supervisors/multiprocess.py
    `keep_subprocess_alive`). A worker that dies every time soon after it starts (a function
    that ends its process, a worker the kernel kills for its memory) was replaced forever,
    every few seconds, while the edge kept the port and claimed to be up. Each death is now a
    WARNING line; the `DEATHS_LIMIT`-th within `DEATHS_WINDOW_SECONDS` stops the edge, and
    `gave_up` says why. One worker lost now and then is replaced as before.
    """

    DEATHS_LIMIT = 5
    DEATHS_WINDOW_SECONDS = 60.0

    def __init__(self, config: Config, sockets: list[socket.socket], directory: Path) -> None:
        super().__init__(config, sockets=sockets)
        self._directory = directory
        self._known: set[int] = set()
        self._deaths: deque[float] = deque()
        self.gave_up: str | None = None

    def handle_hup(self) -> None:
        """SIGHUP stops the edge, as it does with one worker (uvicorn's own supervisor restarts
        the workers instead): the terminal that ran `lucid serve` is gone, and so is its user."""
        self.handle_term()

    def keep_subprocess_alive(self) -> None:
        """uvicorn's health check and restart, then the bookkeeping of who is gone."""
        before = [(process.pid, process) for process in self.processes]
        super().keep_subprocess_alive()
        replaced = [
            old for (pid, old), new in zip(before, self.processes, strict=False) if new.pid != pid
        ]
        for process in replaced:
            self._count_death(process.pid, process.exitcode)
        self.mark_gone()

    def _count_death(self, pid: int | None, exitcode: int | None) -> None:
        if self.gave_up is not None:
            # Both workers can be found dead in one pass of uvicorn's check: the edge stops at
            # the limit's death, and the line names that one (seen: "6 workers died").
            return
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths[0] <= now - self.DEATHS_WINDOW_SECONDS:
            self._deaths.popleft()
        # A negative exit code is the signal that ended it (multiprocessing's convention).
        how = (
            f"signal {-exitcode}"
            if exitcode is not None and exitcode < 0
            else (f"exit status {exitcode}")
        )
        deaths = len(self._deaths)
        if deaths >= self.DEATHS_LIMIT:
            self.gave_up = (
                f"{deaths} workers died within {self.DEATHS_WINDOW_SECONDS:.0f} s (the last, "
                f"[{pid}], with {how}): stopping instead of starting more; their output above "
                "says why"
            )
            self.should_exit.set()
            return
        _log.warning(
            "worker [%s] died (%s), replaced: %d of %d deaths within %.0f s stop the edge",
            pid,
            how,
            deaths,
            self.DEATHS_LIMIT,
            self.DEATHS_WINDOW_SECONDS,
        )

    def mark_gone(self) -> None:
        """Mark the workers no longer running (replaced, removed or stopped) as dead."""
        running = {p.pid for p in self.processes if p.pid is not None and p.exitcode is None}
        for pid in self._known - running:
            mark_dead(pid, self._directory)
        self._known = running
