"""Reserved concurrency is shared by every worker process and survives none of them."""

from __future__ import annotations

import errno
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lucid_edge.concurrency import SlotFile, create_slot_file
from tests.utils.descriptors import descriptors_on

_OTHER_WORKER = """
import sys
from pathlib import Path
from lucid_edge.concurrency import SlotFile

slots = SlotFile(Path(sys.argv[1]), {"Other": 3, "Users": 1})
other, users = slots.slots["Other"], slots.slots["Users"]
%s
print("ready", flush=True)
sys.stdin.read()  # keeps what it holds until the test closes stdin (or kills it)
"""


@contextmanager
def _other_worker(path: Path, does: str) -> Iterator[subprocess.Popen[str]]:
    """Another worker process on the slot file `path` (Other 3, Users 1), once it has run the
    statement `does`; leaving the block closes its stdin and waits for it."""
    with subprocess.Popen(
        [sys.executable, "-c", _OTHER_WORKER % does, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as worker:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
        yield worker


@pytest.fixture
def shared() -> Iterator[tuple[Path, SlotFile]]:
    """A slot file (Other 3, Users 1) and this worker's view of it, for `_other_worker` too."""
    path = create_slot_file({"Other": 3, "Users": 1})
    slots = SlotFile(path, {"Users": 1, "Other": 3})
    yield path, slots
    slots.close()
    path.unlink()


def test_a_slot_held_by_another_worker_is_taken_until_that_worker_dies(
    shared: tuple[Path, SlotFile],
) -> None:
    # GIVEN a slot file for a function reserved at 1, shared by two processes
    path, mine = shared
    with _other_worker(path, "assert users.take() == 0") as holder:
        # WHEN the other worker holds the only slot THEN this one is throttled
        assert mine.slots["Users"].take() is None
        assert mine.slots["Other"].take() == 0  # other functions' slots are their own
        holder.kill()  # a worker dying mid-invocation
    # AND its slot comes back with its death, without any release
    assert mine.slots["Users"].take() == 0


def test_a_worker_does_not_take_its_own_slot_twice() -> None:
    slots = SlotFile(None, {"Users": 2})
    users = slots.slots["Users"]
    assert [users.take(), users.take(), users.take()] == [0, 1, None]
    users.release(0)
    assert users.take() == 0
    slots.close()


def test_a_slot_released_by_another_worker_is_free_while_it_lives(
    shared: tuple[Path, SlotFile],
) -> None:
    # GIVEN two functions side by side in one slot file (Other 3, Users 1)
    path, mine = shared
    # WHEN another worker, still running, held every slot and ended its invocations of Users
    # and of Other in the middle slot
    held = "assert [other.take(), other.take(), other.take(), users.take()] == [0, 1, 2, 0]"
    with _other_worker(path, f"{held}; other.release(1); users.release(0)"):
        # THEN those two slots can run here, and nothing else it holds
        other_slots = mine.slots["Other"]
        assert [other_slots.take(), other_slots.take()] == [1, None]
        assert mine.slots["Users"].take() == 0


def test_a_closed_slot_file_fails_loudly_instead_of_throttling() -> None:
    # GIVEN a worker whose slot file is closed (a bug, not a busy function)
    slots = SlotFile(None, {"Users": 1})
    users = slots.slots["Users"]
    slots.close()
    # WHEN an invocation takes a slot THEN the error is raised, not read as "all slots in use"
    with pytest.raises(OSError, match="Bad file descriptor") as raised:
        users.take()
    assert raised.value.errno == errno.EBADF


def test_slot_files_leave_no_descriptor_and_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a temporary directory of this test's own
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # WHEN an edge without a file from `lucid serve` (one process) opens and closes its own
    own = SlotFile(None, {"Users": 1})
    assert own.slots["Users"].take() == 0
    own.close()
    # THEN it leaves nothing in the temporary directory, nor a descriptor open on it
    assert list(tmp_path.iterdir()) == []
    assert descriptors_on(tmp_path) == 0
    # AND a file made by the parent too small for the workers' reservations is refused
    path = create_slot_file({"Users": 2})
    try:
        with pytest.raises(ValueError, match="too small for 3 reserved slots"):
            SlotFile(path, {"Users": 2, "Other": 1})
        SlotFile(path, {"Users": 2}).close()  # exactly the size it needs
        assert descriptors_on(path) == 0
    finally:
        path.unlink()
