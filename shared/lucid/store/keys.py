"""Every Redis key the gateway writes starts here: `lucid:<STAGE>:`, then what it holds.

Stages may share one Redis database (a dev and a staging stack on one ElastiCache): with the
stage in every key, one stage's revocation copy, its `~synced-until@<run_id>` mark, its sign-in
nonces, rate budgets, idempotency records and circuit breakers are never another's. The writers
(lucid.auth.revocation, lucid.auth.signin, lucid.ratelimit.policies, lucid.web.idempotency,
lucid.proxy.breaker_store) take their prefix from `namespace` and name no key of their own.

Deploying this naming starts every stage on fresh keys once: see the README's "Redis keys".
"""

from __future__ import annotations

from lucid.config import get_settings


def namespace(stage: str | None = None) -> str:
    """The prefix of the keys of `stage` (the process's STAGE when None): `lucid:<stage>:`."""
    return f"lucid:{get_settings().STAGE if stage is None else stage}:"


def revocations_key(stage: str | None = None) -> str:
    """The hash of revoked sign-ins (and its sync mark) of `stage`."""
    return namespace(stage) + "revoked-sign-ins"


def nonce_key(nonce: str, stage: str | None = None) -> str:
    """A live sign-in nonce of `stage`."""
    return namespace(stage) + "signin-nonce:" + nonce


def rate_limit_prefix(stage: str | None = None) -> str:
    """What the rate limiter's keys of `stage` start with (`<prefix><policy>:<identity>`)."""
    return namespace(stage) + "rl:"


def idempotency_prefix(stage: str | None = None) -> str:
    """What the idempotency records of `stage` start with (`<prefix><scope>:<sha256>`)."""
    return namespace(stage) + "idem:"


def breaker_prefix(stage: str | None = None) -> str:
    """What the shared circuit-breaker keys of `stage` start with (`<prefix><backend>:...`)."""
    return namespace(stage) + "breaker:"
