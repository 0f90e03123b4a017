"""What this process holds open, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def descriptors_on(where: Path) -> int:
    """How many of this process's descriptors are open on `where` or a file below it (deleted
    files too). Only these are counted: other threads of the test run open and close their own."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # closed since the listing
            continue
        if target.removesuffix(" (deleted)").startswith(str(where)):
            count += 1
    return count
