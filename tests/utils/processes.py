"""Whether what a process started ends with it when it is killed, as a test run or a bench may
be (SIGKILL, the OOM killer, a cancelled CI job): `outlives_killed_parent`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def outlives_killed_parent(script: str, seconds: float = 10.0) -> tuple[bool, list[str]]:
    """Run Python `script` in the repository's root (its imports: the tests', the bench's); it
    prints the PID of a process it started, then any other words, and waits. Once it printed,
    it is killed (SIGKILL: none of its own clean-up runs). Whether the process it started
    still ran `seconds` later (it is then killed), and the words printed."""
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        words = parent.stdout.readline().split()
        if not words:
            parent.kill()
            pytest.fail(f"it started nothing: {parent.communicate()[1][-3000:]}")
        child = int(words[0])
        started = start_time(child)
        parent.kill()
        parent.communicate()
    outlived = not ends_within(child, seconds)
    if outlived and start_time(child) == started:
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
