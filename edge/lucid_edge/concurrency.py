"""ReservedConcurrentExecutions across every worker process of the edge.

A function with reserved concurrency R has R one-byte slots in a small file the parent creates
before the workers start. An invocation holds a slot by an exclusive `fcntl` byte-range lock on
it and releases the lock when it ends. The kernel drops a process's locks when the process
dies, so a worker that crashes in the middle of invocations never leaks concurrency. `fcntl`
locks exclude other processes only: the threads of one worker share its locks, so each worker
also remembers which slots it holds (callers serialise `take` and `release` with their lock).

Lambda: "When a function has reserved concurrency, no other function can use that concurrency
... [it] also limits the maximum concurrency for the function" and further invocations are
throttled (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def create_slot_file(reservations: Mapping[str, int]) -> Path:
    """An empty slot file with room for every reserved slot of `reservations`."""
    fd, name = tempfile.mkstemp(prefix="lucid-concurrency-")
    try:
        os.ftruncate(fd, max(1, sum(reservations.values())))
    finally:
        os.close(fd)
    return Path(name)


class ReservedSlots:
    """The `count` slots of one function, starting at `offset` in the slot file `fd`."""

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self._fd, self._offset, self._count = fd, offset, count
        self._held: set[int] = set()

    def take(self) -> int | None:
        """A free slot, now held by this process; None when all are in use (throttle)."""
        for index in range(self._count):
            if index in self._held:
                continue
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._offset + index)
            except OSError as err:
                if err.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                continue  # another worker holds it
            self._held.add(index)
            return index
        return None

    def release(self, index: int) -> None:
        """Give slot `index` back."""
        self._held.discard(index)
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset + index)


class SlotFile:
    """The open slot file of one worker and the slots of each reserved function."""

    def __init__(self, path: Path | None, reservations: Mapping[str, int]) -> None:
        own = path is None
        if path is None:
            path = create_slot_file(reservations)
        # Opened once for the worker's lifetime: closing any descriptor of a file drops all of
        # the process's locks on it.
        self._fd = os.open(path, os.O_RDWR)
        if own:
            path.unlink()  # the descriptor keeps it; nothing to clean up later
        needed = sum(reservations.values())
        if os.fstat(self._fd).st_size < needed:
            os.close(self._fd)
            raise ValueError(f"slot file {path} is too small for {needed} reserved slots")
        self.slots: dict[str, ReservedSlots] = {}
        offset = 0
        for name in sorted(reservations):  # every worker derives the same layout
            self.slots[name] = ReservedSlots(self._fd, offset, reservations[name])
            offset += reservations[name]

    def close(self) -> None:
        """Close the file (its locks go with it)."""
        os.close(self._fd)
