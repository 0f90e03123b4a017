"""A circuit breaker per backend whose transitions are shared by every function instance.

    CLOSED ──(failure rate ≥ BREAKER_FAILURE_RATE over BREAKER_WINDOW_SECONDS,
    │         at least BREAKER_MIN_CALLS calls)──▶ OPEN ──(BREAKER_OPEN_SECONDS)──▶ HALF_OPEN
    ▲                                               ▲                                │
    └──────────────── a probe succeeds ─────────────┼──────── a probe fails ─────────┘
                                                    at most BREAKER_HALF_OPEN_CALLS probes at once

Design (after Powertools' and resilience4j's: count locally, share transitions):

- Each instance counts outcomes in its own sliding window (a deque of recent calls): a healthy
  call costs no Redis write at all, and one Lambda instance serves one request at a time, so
  its window is an honest sample of the backend.
- Transitions (trip, probe success, probe failure) are written to the store, which is Redis
  when reachable (`breaker_store`), so the first instance that sees the backend fail opens the
  breaker for all of them.
- Instances read the shared state through a cached copy refreshed at most every
  BREAKER_SYNC_MS on the healthy path, and at once after every failure (to adopt another
  instance's trip instead of tripping again). While the cached state says OPEN, no Redis call is
  made until the open period ends: the 503 answer is local and immediate. HALF_OPEN asks Redis
  for every call, because probe slots must be granted atomically.
- Failures are connection errors, timeouts and 5xx answers; a 4xx is the backend working.
- Every transition an instance sees clears its window: after the breaker closes, only calls
  made since count towards the next trip.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple, Self

from lucid.config import Settings
from lucid.errors import ServiceUnavailableError
from lucid.observability import count
from lucid.proxy.breaker_store import BreakerState, BreakerStore, SharedState

logger = logging.getLogger("lucid.proxy.breaker")

_MAX_WINDOW_ENTRIES = 10_000
# The probe's own bookkeeping beside its exchange: the slot's grant and the outcome's write.
PROBE_SLOT_MARGIN_SECONDS = 1.0


class BreakerPolicy(NamedTuple):
    """The thresholds of every breaker, from settings."""

    window_seconds: float
    min_calls: int
    failure_rate: float
    open_seconds: float
    half_open_calls: int
    sync_seconds: float
    probe_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings, exchange_seconds: float) -> Self:
        """The policy the BREAKER_* settings describe, for calls lasting at most
        `exchange_seconds` (`lucid.proxy.forwarder.exchange_seconds`): a probe slot outlasts the
        longest probe by PROBE_SLOT_MARGIN_SECONDS, so no second probe starts beside it."""
        return cls(
            window_seconds=settings.BREAKER_WINDOW_SECONDS,
            min_calls=settings.BREAKER_MIN_CALLS,
            failure_rate=settings.BREAKER_FAILURE_RATE,
            open_seconds=settings.BREAKER_OPEN_SECONDS,
            half_open_calls=settings.BREAKER_HALF_OPEN_CALLS,
            sync_seconds=settings.BREAKER_SYNC_MS / 1000,
            probe_seconds=exchange_seconds + PROBE_SLOT_MARGIN_SECONDS,
        )


class Permit(Enum):
    """What `acquire` granted: an ordinary call, or one of the half-open probes."""

    CALL = "call"
    PROBE = "probe"


class OutcomeWindow:
    """Calls and failures over the last `seconds` (exact: one entry per call, bounded)."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self._seconds = seconds
        self._clock = clock
        self._outcomes: deque[tuple[float, bool]] = deque(maxlen=_MAX_WINDOW_ENTRIES)
        self._failures = 0

    def add(self, failed: bool) -> None:
        """Record one call."""
        self._prune()
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0][1]:
            self._failures -= 1
        self._outcomes.append((self._clock(), failed))
        self._failures += failed

    def counts(self) -> tuple[int, int]:
        """(calls, failures) in the window."""
        self._prune()
        return len(self._outcomes), self._failures

    def clear(self) -> None:
        """Forget everything (after a transition)."""
        self._outcomes.clear()
        self._failures = 0

    def _prune(self) -> None:
        horizon = self._clock() - self._seconds
        while self._outcomes and self._outcomes[0][0] <= horizon:
            _, failed = self._outcomes.popleft()
            self._failures -= failed


class CircuitBreaker:
    """The breaker of one backend in this instance; state transitions go through `store`."""

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        store: BreakerStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._policy = policy
        self._store = store
        self._clock = clock
        self._window = OutcomeWindow(policy.window_seconds, clock)
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._fresh_until = float("-inf")

    def acquire(self) -> Permit:
        """Permission for one call; `ServiceUnavailableError` (503, Retry-After) when open."""
        now = self._clock()
        if self._state is BreakerState.CLOSED and now >= self._fresh_until:
            self._adopt(self._store.read(self.name), now)
        if self._state is BreakerState.CLOSED:
            return Permit.CALL
        if self._state is BreakerState.OPEN and now < self._open_until:
            raise self._rejection(self._open_until - now)
        probe_ms = int(self._policy.probe_seconds * 1000)
        answer = self._store.acquire_probe(self.name, self._policy.half_open_calls, probe_ms)
        self._adopt(SharedState(answer.state, answer.wait_ms), now)
        if answer.state is BreakerState.CLOSED:
            return Permit.CALL
        if answer.granted:
            return Permit.PROBE
        raise self._rejection(answer.wait_ms / 1000)

    def record(self, permit: Permit, *, failed: bool) -> None:
        """The outcome of a call made under `permit`."""
        now = self._clock()
        if permit is Permit.PROBE:
            if failed:
                self._open(force=True, now=now)
            else:
                self._store.close(self.name)
                self._window.clear()
                self._adopt(SharedState(BreakerState.CLOSED), now)
                logger.warning("breaker %s closed: a probe succeeded", self.name)
            return
        self._window.add(failed)
        if failed:  # perhaps another instance already tripped: adopt its state, not a new trip
            self._adopt(self._store.read(self.name), now)
        calls, failures = self._window.counts()
        if (
            self._state is BreakerState.CLOSED
            and calls >= self._policy.min_calls
            and failures / calls >= self._policy.failure_rate
        ):
            self._open(force=False, now=now)

    @property
    def state(self) -> BreakerState:
        """This instance's current view of the state."""
        return self._state

    def _open(self, *, force: bool, now: float) -> None:
        open_ms = int(self._policy.open_seconds * 1000)
        answer = self._store.trip(self.name, open_ms, force=force)
        self._adopt(answer.shared, now)
        self._window.clear()
        if not answer.opened:
            # An unforced trip keeps an open or half-open period it finds (another instance
            # tripped first; `BreakerStore.trip`): this instance adopts it, but it opened
            # nothing, so it neither logs an opening nor counts one; that instance did.
            return
        logger.warning("breaker %s opened for %.1f s", self.name, self._open_until - now)
        count("CircuitOpened")

    def _adopt(self, shared: SharedState, now: float) -> None:
        if shared.state is not self._state:
            # A transition (ours or another instance's) starts the count afresh, as resilience4j
            # resets its window: failures from before a trip must not count again after the
            # breaker closed, where a single new failure would otherwise reopen it.
            self._window.clear()
        self._state = shared.state
        self._fresh_until = now + self._policy.sync_seconds
        if shared.state is BreakerState.OPEN:
            # Nothing but the end of the open period can change an OPEN state worth acting on.
            self._open_until = now + shared.open_ms / 1000
            self._fresh_until = max(self._fresh_until, self._open_until)

    def _rejection(self, wait_seconds: float) -> ServiceUnavailableError:
        count("CircuitRejected")  # alarmed on: calls refused minute after minute = held open
        retry_after = max(1, math.ceil(wait_seconds))
        return ServiceUnavailableError(
            f"the {self.name} backend is failing; the gateway stops calling it for a while",
            extensions={"backend": self.name, "breaker": self._state.value},
            headers={"Retry-After": str(retry_after)},
        )
