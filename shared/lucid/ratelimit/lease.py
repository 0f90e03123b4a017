"""Local reservations (leases) of rate-limit slots: fewer Redis round trips for busy callers.

A caller whose requests keep reaching the same instance makes that instance ask Redis, in the
round trip it makes anyway, for a few slots beyond the current request. Redis counts them at
once, so the instance can admit that many more requests of the caller without asking again. Kong's
Rate Limiting Advanced plugin does the opposite trade with `sync_rate` (counters kept in each
node's memory and pushed to Redis every `sync_rate` seconds, so nodes may together admit more
than the limit in between: https://developer.konghq.com/plugins/rate-limiting-advanced/ ,
config.sync_rate). Leases are conservative instead:

* **Never more admissions than without leases.** Every slot is charged in Redis, inside the
  sliding-window algorithm's decision, before any request uses it, and a lease ends with the
  window it was charged in (timed from when its round trip was set out, so a slow reply cannot
  stretch it) and after `LEASE_SECONDS` at most, so no slot is spent in a later window than the
  one it was counted in. One exception: when Redis loses its data (a restart without
  persistence, FLUSHDB, a failover to a replica that missed the writes) every count starts
  again from zero, leases or not, and the slots instances hold then come on top: at most the
  bound below, once per loss, for up to LEASE_SECONDS (or, given back on the next round trip,
  taken off the new count).
* **Refused early by at most N x min(RATE_LIMIT_LEASE_MAX, (q - 1) / 32)** for N instances
  serving the caller: that many slots can sit unspent in other instances' leases. A lease takes at
  most 1/32 of what the caller has left (so a caller near its quota gets no lease and every request
  is decided in Redis, exactly), and unspent slots are given back on the instance's next round
  trip for that caller, so at most one lease per instance is outstanding.
* **Headers**: `X-RateLimit-Remaining` from a lease is what Redis said when the lease was taken,
  minus the slots spent since, so it can lag other instances' traffic by up to LEASE_SECONDS.

Sizing: an instance asks for a lease only when the caller's previous round trip on it is less
than LEASE_SECONDS old, and then for twice what it spent of the previous lease (at least 1, at
most `max_slots`): a caller sending one request a second is decided in Redis every time.
RATE_LIMIT_LEASE_MAX=0 turns leases off. Only the tier check uses them, never the sign-in limits.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import math
import threading
import time
from collections.abc import Callable
from itertools import islice
from typing import NamedTuple

LEASE_SECONDS = 1.0
LEASE_SHARE = 32
MAX_KEYS = 10_000


class Lease:
    """What an instance knows of one key: its lease of slots, and its last round trip.

    A plain slotted class: a dataclass costs ~0.4 ms of every cold start to define (README,
    "Cold start of the built artifact"), and nothing compares or prints a lease."""

    __slots__ = (
        "asking",
        "granted",
        "lapses",
        "remaining",
        "slots",
        "trip",
        "window",
        "window_end",
    )

    def __init__(
        self,
        *,
        slots: int,
        granted: int,
        remaining: int,
        window: int,
        window_end: float,
        lapses: float,
        trip: float,
    ) -> None:
        self.slots = slots  # not yet spent
        self.granted = granted
        self.remaining = remaining  # what the caller had left after the request that took it
        self.window = window  # the window number the slots were charged in
        self.window_end = window_end  # monotonic seconds
        self.lapses = lapses  # monotonic seconds
        self.trip = trip  # monotonic seconds of the last round trip for the key
        self.asking = False  # a round trip asking for a lease is under way


class Spent(NamedTuple):
    """A request admitted from a lease."""

    remaining: int
    reset_seconds: int


class TripTerms(NamedTuple):
    """What the next round trip for a key asks for and gives back (the script's lease args)."""

    extra: int
    back: int
    back_window: int
    # When the trip was set out (this instance's clock): Redis read its TIME after it, so the
    # window it reports ends no later than `asked + reset`, however long the reply took.
    asked: float | None = None

    def args(self) -> list[int]:
        """The script's trailing arguments."""
        return [self.extra, LEASE_SHARE, self.back, self.back_window]

    def args_again(self) -> list[int]:
        """The trailing arguments of the trip sent again on a new connection: Redis may have
        run the first and given the slots back already, so this one gives none back."""
        return [self.extra, LEASE_SHARE, 0, -1]


NO_LEASE = TripTerms(0, 0, -1)


class Leases:
    """Per-instance leases by key, safe across the invocation threads of one process.

    One round trip at a time asks for a key's lease; other threads meanwhile make plain ones.
    """

    def __init__(
        self, max_slots: int, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self.max_slots = max_slots
        self._clock = clock
        self._max_keys = max_keys
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def spend(self, key: str) -> Spent | None:
        """Admit one request of `key` from its lease, or None when a round trip is needed."""
        now = self._clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.slots <= 0 or now >= lease.lapses:
                return None
            lease.slots -= 1
            spent = lease.granted - lease.slots
            reset = max(1, math.ceil(lease.window_end - now))
            return Spent(lease.remaining - spent, reset)

    def terms(self, key: str) -> TripTerms:
        """The lease to ask for on this round trip for `key`, with the slots to give back."""
        now = self._clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.asking:
                return NO_LEASE
            back, lease.slots = lease.slots, 0
            used = lease.granted - back
            hot = now - lease.trip < LEASE_SECONDS
            extra = min(self.max_slots, max(1, 2 * used)) if hot else 0
            lease.asking = extra > 0
            return TripTerms(extra, back, lease.window, now)

    def record(
        self, key: str, terms: TripTerms, granted: int, remaining: int, reset_us: int, window: int
    ) -> None:
        """Remember a round trip for `key` made on `terms` and the lease Redis granted in it."""
        now = self._clock()
        # Timed from when the trip was set out, not from the reply: a slow reply must not carry
        # the lease past the end of the window its slots were charged in.
        asked = now if terms.asked is None else min(terms.asked, now)
        window_end = asked + reset_us / 1_000_000
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None and terms.extra == 0:
                lease.trip = now  # a plain trip: a lease in hand stays as it is
                return
            self._leases[key] = Lease(
                slots=granted,
                granted=granted,
                remaining=remaining,
                window=window,
                window_end=window_end,
                lapses=min(window_end, asked + LEASE_SECONDS),
                trip=now,
            )
            if len(self._leases) > self._max_keys:
                # The oldest keys go; their unspent slots stay counted until their window ends.
                for old in list(islice(self._leases, len(self._leases) - self._max_keys)):
                    del self._leases[old]

    def forget(self, key: str) -> None:
        """Drop what is known of `key` (its unspent slots stay counted in Redis)."""
        with self._lock:
            self._leases.pop(key, None)
