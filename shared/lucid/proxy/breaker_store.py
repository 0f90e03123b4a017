"""Where a backend's breaker state lives: Redis (shared by every instance) or this process.

The state is three keys per backend, all with a TTL, read against Redis's own clock so that
instances never compare wall clocks:

    lucid:<stage>:breaker:<name>:open     exists while OPEN; its PTTL is the Retry-After
    lucid:<stage>:breaker:<name>:half     exists while OPEN or HALF_OPEN (OPEN time + a linger)
    lucid:<stage>:breaker:<name>:probes   half-open probe slots taken; expires after one
                                          probe's timeout, so a probe that died with its
                                          instance frees its slot

No key means CLOSED, so a lost key fails towards letting traffic through, where the local
failure count trips the breaker again if the backend is still down. Probe slots are granted
atomically by one Lua script (INCR with a TTL); a trip is one script too, so two instances
tripping at once keep one open period.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple, Protocol

from lucid.store import resp
from lucid.store.keys import breaker_prefix

logger = logging.getLogger("lucid.proxy.breaker")

HALF_OPEN_LINGER_MS = 60_000


class BreakerState(StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class SharedState(NamedTuple):
    """What the store says: the state, and for OPEN how long it still lasts."""

    state: BreakerState
    open_ms: int = 0


class ProbeAnswer(NamedTuple):
    """The store's answer to "may I probe?": the state, whether a slot was granted, a wait."""

    state: BreakerState
    granted: bool
    wait_ms: int = 0


class TripAnswer(NamedTuple):
    """The store's answer to a trip: the state that holds now, and whether this call opened
    it (False when an unforced trip found an open or half-open period and kept it)."""

    shared: SharedState
    opened: bool


CLOSED = SharedState(BreakerState.CLOSED)


class BreakerStore(Protocol):
    """The operations a breaker needs from wherever its state is kept."""

    def read(self, name: str) -> SharedState:
        """The current state (no write)."""
        ...  # pragma: no cover

    def acquire_probe(self, name: str, limit: int, probe_ms: int) -> ProbeAnswer:
        """In HALF_OPEN, take one of `limit` probe slots (held for `probe_ms`)."""
        ...  # pragma: no cover

    def trip(self, name: str, open_ms: int, *, force: bool) -> TripAnswer:
        """Open for `open_ms`; unless `force`, keep an open or half-open period already there
        (the answer then says that this call opened nothing)."""
        ...  # pragma: no cover

    def close(self, name: str) -> None:
        """Back to CLOSED."""
        ...  # pragma: no cover


_ACQUIRE = """
local open_ms = redis.call('PTTL', KEYS[1])
if open_ms > 0 then return {1, open_ms} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {0, 0} end
local taken = redis.call('INCR', KEYS[3])
if taken == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
if taken <= tonumber(ARGV[1]) then return {2, 0} end
return {3, redis.call('PTTL', KEYS[3])}
"""

_TRIP = """
if ARGV[3] == '0' and redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, math.max(redis.call('PTTL', KEYS[1]), 0)}
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
return {1, tonumber(ARGV[1])}
"""


def _keys(prefix: str, name: str) -> list[str]:
    return [f"{prefix}{name}:open", f"{prefix}{name}:half", f"{prefix}{name}:probes"]


class RedisBreakerStore:
    """The state in Redis, shared by every function instance."""

    def __init__(self, client: resp.Redis, stage: str | None = None) -> None:
        """`stage`: whose breakers these are (the process's STAGE when None)."""
        self._prefix = breaker_prefix(stage)
        self._redis = client
        self._acquire = client.register_script(_ACQUIRE)
        self._trip = client.register_script(_TRIP)

    def read(self, name: str) -> SharedState:
        """PTTL of the open and half keys in one round trip."""
        open_key, half_key, _ = _keys(self._prefix, name)
        # One write, two replies: not a transaction (as redis-py's pipeline(transaction=False)).
        open_ms, half = self._redis.pipeline(("PTTL", open_key), ("EXISTS", half_key))
        if int(open_ms) > 0:
            return SharedState(BreakerState.OPEN, int(open_ms))
        return SharedState(BreakerState.HALF_OPEN) if int(half) else CLOSED

    def acquire_probe(self, name: str, limit: int, probe_ms: int) -> ProbeAnswer:
        """One script: still open, closed, or a probe slot granted or refused."""
        code, value = self._acquire(keys=_keys(self._prefix, name), args=[limit, probe_ms])
        if code == 0:
            return ProbeAnswer(BreakerState.CLOSED, granted=False)
        if code == 1:
            return ProbeAnswer(BreakerState.OPEN, granted=False, wait_ms=int(value))
        return ProbeAnswer(BreakerState.HALF_OPEN, granted=code == 2, wait_ms=max(int(value), 0))

    def trip(self, name: str, open_ms: int, *, force: bool) -> TripAnswer:
        """One script: open and half keys set, probe slots cleared; or, unforced, the open or
        half-open period another instance's trip started, kept."""
        args = [open_ms, open_ms + HALF_OPEN_LINGER_MS, "1" if force else "0"]
        opened, remaining = self._trip(keys=_keys(self._prefix, name), args=args)
        if int(remaining) > 0:
            return TripAnswer(SharedState(BreakerState.OPEN, int(remaining)), opened == 1)
        return TripAnswer(SharedState(BreakerState.HALF_OPEN), opened=False)

    def close(self, name: str) -> None:
        """Delete the three keys."""
        self._redis.delete(*_keys(self._prefix, name))


class _LocalEntry:
    # A plain slotted class, not a dataclass: 0.2-0.4 ms less of the proxy's cold start.
    __slots__ = ("half_until", "open_until", "probes", "probes_until")

    def __init__(self, open_until: float = 0.0, half_until: float = 0.0) -> None:
        self.open_until = open_until
        self.half_until = half_until
        self.probes = 0
        self.probes_until = 0.0


class LocalBreakerStore:
    """The same state machine in this process only (no Redis, or Redis down)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, _LocalEntry] = {}

    def _entry(self, name: str) -> _LocalEntry:
        return self._entries.setdefault(name, _LocalEntry())

    def read(self, name: str) -> SharedState:
        """The state by this process's clock."""
        entry, now = self._entry(name), self._clock()
        if now < entry.open_until:
            return SharedState(BreakerState.OPEN, _ms(entry.open_until - now))
        return SharedState(BreakerState.HALF_OPEN) if now < entry.half_until else CLOSED

    def acquire_probe(self, name: str, limit: int, probe_ms: int) -> ProbeAnswer:
        """Same answers as the Redis script."""
        state = self.read(name)
        if state.state is not BreakerState.HALF_OPEN:
            return ProbeAnswer(state.state, granted=False, wait_ms=state.open_ms)
        entry, now = self._entry(name), self._clock()
        if now >= entry.probes_until:
            entry.probes, entry.probes_until = 0, now + probe_ms / 1000
        entry.probes += 1
        granted = entry.probes <= limit
        return ProbeAnswer(state.state, granted, 0 if granted else _ms(entry.probes_until - now))

    def trip(self, name: str, open_ms: int, *, force: bool) -> TripAnswer:
        """Open for `open_ms` unless already open or half-open (and not `force`)."""
        current = self.read(name)
        if not force and current.state is not BreakerState.CLOSED:
            return TripAnswer(current, opened=False)
        now = self._clock()
        self._entries[name] = _LocalEntry(
            open_until=now + open_ms / 1000,
            half_until=now + (open_ms + HALF_OPEN_LINGER_MS) / 1000,
        )
        return TripAnswer(SharedState(BreakerState.OPEN, open_ms), opened=True)

    def close(self, name: str) -> None:
        """Forget the entry."""
        self._entries.pop(name, None)


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


class FallbackStore:
    """Redis first; when Redis fails, this process's own store, with a (throttled) warning.

    Transitions are applied to both, so an instance that loses Redis carries on from the last
    state it knew rather than from CLOSED. After a Redis error the instance stays local for
    RETRY_REDIS_AFTER_SECONDS, so a dead Redis costs one timeout per period, not one per call.
    """

    WARN_EVERY_SECONDS = 30.0
    RETRY_REDIS_AFTER_SECONDS = 5.0

    def __init__(self, shared: RedisBreakerStore | None, local: LocalBreakerStore) -> None:
        self._redis_store = shared
        self._local = local
        self._warned_at = float("-inf")
        self._local_until = float("-inf")

    @property
    def _shared(self) -> RedisBreakerStore | None:
        return self._redis_store if time.monotonic() >= self._local_until else None

    def _degrade(self, error: resp.RedisError) -> None:
        now = time.monotonic()
        self._local_until = now + self.RETRY_REDIS_AFTER_SECONDS
        if now - self._warned_at >= self.WARN_EVERY_SECONDS:
            self._warned_at = now
            logger.warning(
                "breaker state: Redis %s, this instance decides alone: %s",
                "refused the credentials" if resp.refused_credentials(error) else "unavailable",
                type(error).__name__,
            )

    def read(self, name: str) -> SharedState:
        """Shared state, or the local one."""
        shared = self._shared
        if shared is not None:
            try:
                return shared.read(name)
            except resp.RedisError as error:
                self._degrade(error)
        return self._local.read(name)

    def acquire_probe(self, name: str, limit: int, probe_ms: int) -> ProbeAnswer:
        """Shared probe slot, or a local one."""
        shared = self._shared
        if shared is not None:
            try:
                return shared.acquire_probe(name, limit, probe_ms)
            except resp.RedisError as error:
                self._degrade(error)
        return self._local.acquire_probe(name, limit, probe_ms)

    def trip(self, name: str, open_ms: int, *, force: bool) -> TripAnswer:
        """Open locally and, when reachable, in Redis (whose answer wins)."""
        local = self._local.trip(name, open_ms, force=force)
        shared = self._shared
        if shared is not None:
            try:
                return shared.trip(name, open_ms, force=force)
            except resp.RedisError as error:
                self._degrade(error)
        return local

    def close(self, name: str) -> None:
        """Close locally and, when reachable, in Redis."""
        self._local.close(name)
        shared = self._shared
        if shared is not None:
            try:
                shared.close(name)
            except resp.RedisError as error:
                self._degrade(error)
