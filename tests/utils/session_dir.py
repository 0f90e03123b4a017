"""The test session's own directory, and the removal of those that killed sessions left behind.

The session keeps its files in one directory of the system's temporary directory: the
redis-server's working directory (its log, a snapshot a test asks for) and the `lucid` command
line's LUCID_CONFIG_DIR (keys, credentials). `pytest_unconfigure` removes it; a session stopped by
SIGKILL (the OOM killer, a cancelled CI job) never runs that, and what it made stayed for good:
the shared team machine's /tmp held over a hundred of each (`lucid-redis-*`,
`lucid-tests-config-*`) with no redis-server running.

So the next session removes them. Each session holds an exclusive flock(2) on a file in its
directory for as long as it runs, and a session starting removes every such directory whose lock
it can take: the kernel releases a lock when the last descriptor of its open file is closed
(flock(2)), which a process's end does however it ends, so a lock that can be taken belongs to
a session that is over; one still running (another worktree's, on the same machine) keeps its
lock and its directory, and so does one whose forked child still runs. The redis-servers tests
start themselves keep their working directories (`lucid-redis-*`, made by lucid_edge.local) in
it too (tests.utils.tied `start_redis`, through `current`). Directories named as before
(`lucid-tests-config-*`; `lucid-redis-*` in the temporary directory itself) are left alone:
nothing says whether their session still runs. Chosen over the alternatives:

- the system's cleaning: Debian 12's tmpfiles.d/tmp.conf (`D /tmp 1777 root root -`) empties
  /tmp at boot only, with no age limit (this machine's /tmp is on its disk, not a tmpfs), and
  a container's or a CI runner's boot may never run it: no bound anyone can count on;
- a tied child removing them when the session dies: the session's redis-server is tied by
  exec-ing it in the launcher, so no process of ours is left to clean after it; a watcher would
  be one more process per session, and a cancelled CI job signals the whole process group,
  killing the watcher with the session (an ephemeral CI machine needs no cleaning anyway).

A directory is created under another name and renamed to `PREFIX...` once its lock is held, so a
starting session never sees another's directory before its lock is taken.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

PREFIX = "lucid-test-session-"
_STARTING = "lucid-test-starting-"
_LOCK = "session.lock"
_claimed: list[Path] = []  # this process's session directory, once claimed


def current() -> Path | None:
    """The directory of the session this process claimed (and has not removed), else None (a
    bench run, a process outside the tests)."""
    return _claimed[-1] if _claimed else None


@dataclass(frozen=True)
class SessionDir:
    """This session's directory, locked while the descriptor `lock` is open."""

    path: Path
    lock: int

    @classmethod
    def claim(cls) -> SessionDir:
        """A new, empty directory (mode 700), once the directories of ended sessions are gone."""
        remove_ended_sessions()
        while True:
            starting = Path(tempfile.mkdtemp(prefix=_STARTING))
            lock = os.open(starting / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = starting.with_name(PREFIX + starting.name.removeprefix(_STARTING))
            try:
                # rename(2) onto an existing directory fails unless it is empty: a session's
                # never is (its lock file)
                starting.rename(path)
            except OSError:
                os.close(lock)
                shutil.rmtree(starting, ignore_errors=True)
                continue
            _claimed.append(path)
            return cls(path, lock)

    def remove(self) -> None:
        """Remove the directory and everything in it, then let its lock go."""
        if self.path in _claimed:
            _claimed.remove(self.path)
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self.lock)


def remove_ended_sessions() -> list[Path]:
    """Remove the directory of every session that ended without removing it; the removed."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            lock = os.open(path / _LOCK, os.O_RDONLY)
        except OSError:
            continue  # another user's, or removed meanwhile
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # its session runs
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(lock)
    return removed
