"""Commands the tests start that end with the test process: a `make test` stopped part-way
(SIGKILL, the OOM killer, a cancelled CI job) left its `lucid serve` edges running, adopted by
init, with their workers and embedded redis-server.

`tied(args)` runs `args` through a launcher that asks Linux to send it SIGTERM when its parent
dies (prctl(2) PR_SET_PDEATHSIG), then execs `args`: the setting survives execve (prctl(2):
it is cleared only for a set-user-ID, set-group-ID or file-capability binary), so the command
keeps the launcher's PID, the one `Popen` reports. SIGTERM is `lucid serve`'s own way to stop,
which ends its workers and its embedded redis-server
(tests/e2e/test_edge_processes.py, test_a_stopped_edge_leaves_no_process_behind). The edge is not
changed: it gets no option of its own for a watch only the tests need. Every redis-server the
tests and the bench start, the test session's own included, comes from `start_redis` here
(lucid_edge.local's, tied; tests/edge/local/test_redis_server.py fails naming a module that
starts one untied), and the servers the bench starts through bench/harness.py `running` are
tied the same way; redis-server, uvicorn and the edge all stop on SIGTERM.

A launcher rather than `Popen(preexec_fn=...)`: the subprocess documentation calls preexec_fn
unsafe in a process with threads (the child may deadlock before exec), and the test process
runs many. Linux sends the signal when the *thread* that started the process ends (prctl(2)),
not only the process: the fixtures start edges on pytest's main thread, which lives as long
as the run. Elsewhere than Linux, `args` are returned unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lucid_edge.local import EmbeddedRedis
from lucid_edge.local import start_redis as start_untied_redis
from tests.utils import session_dir

# prctl(PR_SET_PDEATHSIG = 1, SIGTERM); a parent that died before it was set is not waited for
# (getppid() then names whoever adopted the launcher), and the command is not started.
_LAUNCHER = """
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
if os.getppid() != int(sys.argv[1]):
    sys.exit("the process that started this one has ended")
os.execv(sys.argv[2], sys.argv[2:])
"""


def tied(args: list[str]) -> list[str]:
    """`args` (an executable's path first) as a command that receives SIGTERM when this
    process, or the thread starting it, ends."""
    if not sys.platform.startswith("linux"):
        return args
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *args]


def start_redis(
    port: int | None = None, *, data_dir: Path | None = None, config: Sequence[str] = ()
) -> EmbeddedRedis:
    """`lucid_edge.local.start_redis` (same arguments), the redis-server tied to this process:
    it receives SIGTERM, redis-server's own clean stop, when this process or thread ends.
    Without `data_dir`, in a test session, the server's working directory is made in the
    session's directory (tests.utils.session_dir), so that one the test never stopped (the run
    was killed) goes with the session's files, not left in the temporary directory for good."""
    return start_untied_redis(
        port, data_dir=data_dir, workdir_in=session_dir.current(), config=config, launch=tied
    )
