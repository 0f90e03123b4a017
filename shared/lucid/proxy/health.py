"""Each backend's circuit-breaker state as every instance shares it: for GET /meta/health and
the local edge's metrics. A read only: nothing here changes a state."""

from __future__ import annotations

from lucid.proxy.breaker_store import BreakerState, RedisBreakerStore
from lucid.proxy.routing import BACKENDS
from lucid.store import resp


def breaker_states(client: resp.Redis) -> dict[str, BreakerState]:
    """Every backend's breaker state in Redis, by backend name; `resp.RedisError` when Redis
    cannot be read (the breakers then run on each instance's own state)."""
    store = RedisBreakerStore(client)
    return {backend.name: store.read(backend.name).state for backend in BACKENDS}
