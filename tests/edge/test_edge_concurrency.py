"""Reserved concurrency is shared by every worker process and survives none of them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from lucid_edge.concurrency import SlotFile, create_slot_file

_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lucid_edge.concurrency import SlotFile

    slots = SlotFile(Path(sys.argv[1]), {"Other": 3, "Users": 1})
    assert slots.slots["Users"].take() == 0
    print("held", flush=True)
    sys.stdin.read()  # holds the slot until the test closes stdin (or kills it)
    """
)


def test_a_slot_held_by_another_worker_is_taken_until_that_worker_dies() -> None:
    # GIVEN a slot file for a function reserved at 1, shared by two processes
    path = create_slot_file({"Other": 3, "Users": 1})
    mine = SlotFile(path, {"Users": 1, "Other": 3})
    try:
        with subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "held\n"
            # WHEN the other worker holds the only slot THEN this one is throttled
            assert mine.slots["Users"].take() is None
            assert mine.slots["Other"].take() == 0  # other functions' slots are their own
            holder.kill()  # a worker dying mid-invocation
        # AND its slot comes back with its death, without any release
        assert mine.slots["Users"].take() == 0
    finally:
        mine.close()
        path.unlink()


def test_a_worker_does_not_take_its_own_slot_twice() -> None:
    slots = SlotFile(None, {"Users": 2})
    users = slots.slots["Users"]
    assert [users.take(), users.take(), users.take()] == [0, 1, None]
    users.release(0)
    assert users.take() == 0
    slots.close()
