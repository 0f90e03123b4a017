"""The workers' side of the edge's metrics: the directory prometheus-client's multiprocess
mode writes to, and a uvicorn supervisor that tells it which workers are gone.

`lucid serve` creates the directory and exports PROMETHEUS_MULTIPROC_DIR before any worker
starts (the library picks its mode when a worker first imports it), marks each worker uvicorn
loses or replaces as dead (its gauges stop counting; its counters stay, as Prometheus expects
of counters), and removes the directory with its files at exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead
from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from lucid_edge.metrics import ENV_DIRECTORY

__all__ = ["WorkerSupervisor", "mark_dead", "multiprocess_directory"]


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
    (a crashed or hung worker is restarted by uvicorn: its files stay in the directory)."""

    def __init__(self, config: Config, sockets: list[socket.socket], directory: Path) -> None:
        super().__init__(config, sockets=sockets)
        self._directory = directory
        self._known: set[int] = set()

    def handle_hup(self) -> None:
        """SIGHUP stops the edge, as it does with one worker (uvicorn's own supervisor restarts
        the workers instead): the terminal that ran `lucid serve` is gone, and so is its user."""
        self.handle_term()

    def keep_subprocess_alive(self) -> None:
        """uvicorn's health check and restart, then the bookkeeping of who is gone."""
        super().keep_subprocess_alive()
        self.mark_gone()

    def mark_gone(self) -> None:
        """Mark the workers no longer running (replaced, removed or stopped) as dead."""
        running = {p.pid for p in self.processes if p.pid is not None and p.exitcode is None}
        for pid in self._known - running:
            mark_dead(pid, self._directory)
        self._known = running
