"""A real redis-server that keeps an RDB snapshot, killed and restarted from it: what a restart
that restores older data does (an RDB snapshot, an AOF that missed the last writes)."""

from __future__ import annotations

from pathlib import Path

from lucid_edge.local import EmbeddedRedis
from tests.utils.tied import start_redis


def snapshotting_redis(data_dir: Path) -> EmbeddedRedis:
    """A redis-server on a free port whose SAVE writes its snapshot into `data_dir`."""
    return start_redis(data_dir=data_dir)


def kill_and_restore(server: EmbeddedRedis) -> EmbeddedRedis:
    """`kill -9` the server (nothing more is saved) and start a new process on the same port from
    the snapshot its last SAVE wrote."""
    server.process.kill()
    server.process.wait()
    server.stop()  # the process is gone: only marks it stopped (its directory is kept)
    return start_redis(server.port, data_dir=server.workdir)
