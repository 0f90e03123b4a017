"""RateLimiter: at most one Redis round trip per decision, with a circuit to an in-memory
fallback.

    RateLimiter.check(policy, identity) -> Decision          (one key: the tiers)
    RateLimiter.check_all([(policy, identity), ...]) -> Decision   (all must admit: sign-in)

`check` admits a busy caller from a local lease of slots counted in Redis when it holds one
(`lucid.ratelimit.lease`: never more admissions, and a stated bound on early refusals);
`check_all` always asks Redis.

Redis errors (refused, reset, timeout of REDIS_TIMEOUT_MS, read-only replica, ...) open a
circuit for `retry_seconds`: meanwhile no request pays a Redis timeout, and decisions come from
RATE_LIMIT_FAIL_MODE — `open`: the per-instance in-memory limiter; `closed`: 503. The first
check after the pause tries Redis again and, if it answers, closes the circuit. The warning is
logged once per opening (so at most once per `retry_seconds`), and every decision Redis did not
make counts one `RateLimitFallback` metric.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import functools
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from lucid.config import Settings, get_settings
from lucid.errors import ServiceUnavailableError
from lucid.identity import CallerIdentity
from lucid.observability import count
from lucid.ratelimit.lease import NO_LEASE, Leases, TripTerms
from lucid.ratelimit.memory import InMemoryLimiter
from lucid.ratelimit.policies import Policies, Policy
from lucid.ratelimit.script import ScriptRunner
from lucid.ratelimit.window import LUA_SCRIPT, MICROS, Verdict
from lucid.store import resp
from lucid.store.redis_client import get_redis

logger = logging.getLogger("lucid.ratelimit")

DEFAULT_RETRY_SECONDS = 5.0
FALLBACK_METRIC = "RateLimitFallback"
# What reading a reply of another shape than the script's raises (see _from_reply).
UNREADABLE_REPLY = (TypeError, ValueError, IndexError)

Limit = tuple[Policy, str]


class Decision(NamedTuple):
    """The outcome for one request under its binding policy (whole seconds, as sent)."""

    policy: Policy
    allowed: bool
    remaining: int
    reset_seconds: int
    retry_after: int
    source: Literal["redis", "memory"]


class RateLimiter:
    """Tiered limits of `settings`, decided in Redis (`redis`) with a per-instance fallback."""

    def __init__(
        self,
        redis_client: resp.Redis,
        settings: Settings,
        *,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        self.settings = settings
        self.policies = Policies.from_settings(settings)
        self.retry_seconds = retry_seconds
        self._script = ScriptRunner(redis_client, LUA_SCRIPT)
        self._memory = InMemoryLimiter()
        self._redis_down_until = 0.0
        # Whether Redis refused the credentials when it last failed (the 503 says so).
        self._redis_refused = False
        lease_max = settings.RATE_LIMIT_LEASE_MAX
        self._leases = Leases(lease_max) if lease_max > 0 else None

    @property
    def enabled(self) -> bool:
        """False when RATE_LIMIT_ENABLED is off."""
        return self.settings.RATE_LIMIT_ENABLED

    def policy_for(
        self, caller: CallerIdentity | None, source_ip: str | None, peer: str | None = None
    ) -> Limit:
        """The tier and identity that count a request from `caller` at `source_ip`."""
        return self.policies.for_request(caller, source_ip, peer)

    def check(self, policy: Policy, identity: str) -> Decision:
        """Count one request of `identity` under `policy` and say whether it may proceed."""
        if self._leases is None:
            return self.check_all(((policy, identity),))
        key = policy.key(identity)
        spent = self._leases.spend(key)
        if spent is not None:
            return Decision(policy, True, spent.remaining, spent.reset_seconds, 0, "redis")
        return self._decide(((policy, identity),), [key], self._leases.terms(key))

    def check_all(self, limits: Sequence[Limit]) -> Decision:
        """Count one request against every limit, charged only if all admit it.

        Raises ServiceUnavailableError when Redis is unreachable and RATE_LIMIT_FAIL_MODE=closed.
        """
        keys = [policy.key(identity) for policy, identity in limits]
        return self._decide(limits, keys, NO_LEASE)

    def _decide(self, limits: Sequence[Limit], keys: list[str], terms: TripTerms) -> Decision:
        recorded = False
        try:
            if time.monotonic() >= self._redis_down_until:
                args: list[int] = []
                for policy, _ in limits:
                    args += (policy.quota, policy.window_us)
                try:
                    reply = self._script(keys, args + terms.args(), args + terms.args_again())
                    decision = self._from_reply(limits, keys, terms, reply)
                except resp.RedisError as error:
                    self._open_circuit(error)
                except UNREADABLE_REPLY as error:
                    # Redis answered, but not with the script's reply (something between us and
                    # Redis, or a server that renamed or changed EVALSHA): it cannot count for
                    # us, so it is degraded as an unreachable Redis is, never a 500.
                    self._open_circuit(error, "answered the rate-limit script unreadably")
                else:
                    recorded = True
                    return decision
        finally:
            if not recorded and self._leases is not None and len(keys) == 1:
                # The trip `terms` were made for was not recorded (Redis failed, or anything else
                # went wrong: a reply of another shape, an error outside the client's): drop what is
                # known of the key, or it stays "asking" and never gets a lease again in this
                # instance (its unspent slots stay counted in Redis until their window ends).
                self._leases.forget(keys[0])
        return self._without_redis(limits, keys)

    def _from_reply(
        self, limits: Sequence[Limit], keys: list[str], terms: TripTerms, reply: Any
    ) -> Decision:
        end = 1 + 4 * len(keys)
        # Each field through int(): a reply of another shape raises here (UNREADABLE_REPLY), not
        # later in the headers built from it.
        verdicts = [_verdict(reply[i : i + 4]) for i in range(1, end, 4)]
        decision = _binding(limits, verdicts, "redis")
        if self._leases is not None and len(keys) == 1:
            granted, window = int(reply[end]), int(reply[end + 1])
            first = verdicts[0]
            self._leases.record(keys[0], terms, granted, first.remaining, first.reset_us, window)
        if self._redis_down_until:
            self._redis_down_until = 0.0
            logger.info("Redis answers again: rate limits are shared again")
        return decision

    def _open_circuit(self, error: Exception, what: str | None = None) -> None:
        self._redis_down_until = time.monotonic() + self.retry_seconds
        self._redis_refused = resp.refused_credentials(error)
        if what is None:
            what = "refused the credentials" if self._redis_refused else "unavailable"
        fallback = (
            "refusing with 503"
            if self.settings.RATE_LIMIT_FAIL_MODE == "closed"
            else "limiting per instance in memory"
        )
        # The class name only: driver messages can carry hosts or URIs.
        logger.warning(
            "Redis %s for rate limiting (%s): %s for the next %.1f s",
            what,
            type(error).__name__,
            fallback,
            self.retry_seconds,
        )

    def _without_redis(self, limits: Sequence[Limit], keys: Sequence[str]) -> Decision:
        count(FALLBACK_METRIC)
        if self.settings.RATE_LIMIT_FAIL_MODE == "closed":
            wait = max(1, math.ceil(self._redis_down_until - time.monotonic()))
            raise ServiceUnavailableError(
                "rate limiting cannot count: Redis refused the credentials"
                if self._redis_refused
                else "rate limiting is unavailable; retry shortly",
                headers={"Retry-After": str(wait)},
            )
        verdicts = self._memory.check(keys, [(p.quota, p.window_us) for p, _ in limits])
        return _binding(limits, verdicts, "memory")


def _verdict(fields: Sequence[Any]) -> Verdict:
    """One key's four fields of the script's reply (UNREADABLE_REPLY when they are not)."""
    admitted, remaining, reset_us, retry_us = fields
    return Verdict(bool(int(admitted)), int(remaining), int(reset_us), int(retry_us))


def _binding(
    limits: Sequence[Limit], verdicts: Sequence[Verdict], source: Literal["redis", "memory"]
) -> Decision:
    """The decision the caller sees: the longest refusal, else the least remaining quota."""
    refused = [i for i, verdict in enumerate(verdicts) if not verdict.admitted]
    if refused:
        index = max(refused, key=lambda i: verdicts[i].retry_us)
    else:
        index = min(range(len(verdicts)), key=lambda i: verdicts[i].remaining)
    verdict = verdicts[index]
    return Decision(
        policy=limits[index][0],
        allowed=not refused,
        remaining=verdict.remaining,
        reset_seconds=-(-verdict.reset_us // MICROS),
        retry_after=max(1, -(-verdict.retry_us // MICROS)) if refused else 0,
        source=source,
    )


@functools.cache
def default_limiter() -> RateLimiter | None:
    """The process's limiter from `get_settings()` / `get_redis()`; None when disabled."""
    settings = get_settings()
    if not settings.RATE_LIMIT_ENABLED:
        return None
    return RateLimiter(get_redis(), settings)
