"""The per-instance limiter used while Redis is unreachable: the same algorithm, in memory.

It keeps each instance honest on its own (N instances admit at most N times a quota) until
Redis answers again. Memory is bounded: states past their expiry are dropped first, and past
`max_keys` the oldest keys go, down to 90 % of it (their callers start afresh; only a caller
spread over more than `max_keys` identities within two windows gains from that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from itertools import islice

from lucid.ratelimit.window import Counts, Verdict, decide, expires_at

DEFAULT_MAX_KEYS = 100_000


def _now_us() -> int:
    return time.time_ns() // 1000


class InMemoryLimiter:
    """Sliding-window counters in a dict of key -> (state, window), safe across threads."""

    def __init__(
        self, max_keys: int = DEFAULT_MAX_KEYS, clock_us: Callable[[], int] = _now_us
    ) -> None:
        self._states: dict[str, tuple[Counts, int]] = {}
        self._max_keys = max_keys
        self._clock_us = clock_us
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def check(self, keys: Sequence[str], limits: Sequence[tuple[int, int]]) -> list[Verdict]:
        """Verdicts for one request against every key; charged only if all admit it.

        `limits` holds (quota, window in microseconds) for each key.
        """
        now = self._clock_us()
        with self._lock:
            outcomes = []
            for key, (quota, window) in zip(keys, limits, strict=True):
                stored = self._states.get(key)
                outcomes.append(decide(stored[0] if stored else None, now, quota, window))
            if all(verdict.admitted for verdict, _ in outcomes):
                for key, (_, state), (_, window) in zip(keys, outcomes, limits, strict=True):
                    self._states[key] = (state, window)
                if len(self._states) > self._max_keys:
                    self._shrink(now)
        return [verdict for verdict, _ in outcomes]

    def _shrink(self, now: int) -> None:
        self._states = {
            key: entry for key, entry in self._states.items() if expires_at(*entry) > now
        }
        # Shrink to 90 % so a full table is not rebuilt on every new key.
        excess = len(self._states) - self._max_keys * 9 // 10
        for key in list(islice(self._states, max(excess, 0))):
            del self._states[key]
