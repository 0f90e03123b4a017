"""Sign-in abuse limits for /auth/challenge and /auth/login: per source IP and per TRON address.

Both are counted in one round trip and charged only together, so a refused attempt costs
neither budget. Call it first thing in the route, with the address as the body gives it:

    enforce_signin_limits(source_ip, body.address)
"""

from __future__ import annotations

from lucid.errors import RateLimitedError
from lucid.ratelimit.headers import rate_limit_headers
from lucid.ratelimit.limiter import Decision, Limit, RateLimiter, default_limiter


def enforce_signin_limits(
    ip: str, address: str | None, *, limiter: RateLimiter | None = None
) -> Decision | None:
    """Count one sign-in attempt; RateLimitedError (429, Retry-After) when either limit is spent.

    Returns the binding decision, or None when rate limiting is off. `limiter` defaults to the
    process's limiter.
    """
    limiter = limiter or default_limiter()
    if limiter is None or not limiter.enabled:
        return None
    policies = limiter.policies
    limits: list[Limit] = [(policies.signin_ip, ip)]
    if address:
        limits.append((policies.signin_address, address.strip()))
    decision = limiter.check_all(limits)
    if not decision.allowed:
        per = "address" if decision.policy is policies.signin_address else "IP address"
        raise RateLimitedError(
            f"too many sign-in attempts from this {per}; retry in {decision.retry_after} s",
            extensions={"retry_after": decision.retry_after},
            headers=rate_limit_headers(decision),
        )
    return decision
