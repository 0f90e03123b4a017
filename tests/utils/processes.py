"""Whether what a process started ends with it when it is killed, as a test run or a bench may
be (SIGKILL, the OOM killer, a cancelled CI job): `outlives_killed_parent`."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def outlives_killed_parent(script: str, seconds: float = 10.0) -> tuple[list[int], list[str]]:
    """Run Python `script` in the repository's root (its imports: the tests', the bench's); it
    prints the PIDs of processes it started, then any other words, on one line, and waits.
    Once it printed, it is killed (SIGKILL: none of its own clean-up runs). Which of the
    processes it started still ran `seconds` later (they are then killed), and the words
    printed."""
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        words = parent.stdout.readline().split()
        children = [int(word) for word in itertools.takewhile(str.isdigit, words)]
        if not children:
            parent.kill()
            pytest.fail(f"it started nothing: {words} {parent.communicate()[1][-3000:]}")
        started = {child: start_time(child) for child in children}
        parent.kill()
        parent.communicate()
    deadline = time.monotonic() + seconds
    outlived = [child for child in children if not ends_within(child, deadline - time.monotonic())]
    for child in outlived:
        if start_time(child) == started[child]:
            os.kill(child, signal.SIGKILL)
    return outlived, words


def start_time(pid: int) -> str | None:
    """When process `pid` started (/proc/<pid>/stat's field 22), None once it has ended (a
    zombie has: only its parent has not reaped it yet)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def ends_within(pid: int, seconds: float) -> bool:
    """Whether process `pid`, running now, ends within `seconds` (another process given the same
    PID meanwhile is not it)."""
    started = start_time(pid)
    deadline = time.monotonic() + seconds
    while started is not None and start_time(pid) == started:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
