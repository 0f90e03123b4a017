"""Run the rate-limit script on a connection the calling thread keeps.

The limiter runs one script per request that is not admitted from a lease, so it speaks EVALSHA
on the thread's kept connection (`lucid.store.kept_connection`: the client's path through its
pool costs more than the command). A Redis that lost the script (restart, SCRIPT FLUSH)
gets it again with EVAL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from lucid.store.kept_connection import kept_connections
from lucid.store.resp import NoScriptError, Redis


class ScriptRunner:
    """EVALSHA of one Lua script on the calling thread's kept connection."""

    def __init__(self, client: Redis, script: str) -> None:
        self._kept = kept_connections(client)
        self._script = script
        self._sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()

    def __call__(
        self, keys: Sequence[str], args: Sequence[int], again: Sequence[int] | None = None
    ) -> Any:
        """The script's reply for `keys` and `args`; redis errors propagate.

        A connection that died is dialled again once (`KeptConnections.execute`), with `again`
        instead of `args` when given. Redis may have run the first attempt and only its reply
        been lost, so the retry may count a request twice (over-counting, never over-admission),
        and must not give back a lease's slots twice: the limiter's `again` gives none back.
        """
        try:
            return self._send("EVALSHA", self._sha, keys, args, again)
        except NoScriptError:
            return self._send("EVAL", self._script, keys, args, again)

    def _send(
        self,
        command: str,
        script: str,
        keys: Sequence[str],
        args: Sequence[int],
        again: Sequence[int] | None,
    ) -> Any:
        head = (command, script, len(keys), *keys)
        retry = args if again is None else again
        return self._kept.execute(*head, *args, again=(*head, *retry))
