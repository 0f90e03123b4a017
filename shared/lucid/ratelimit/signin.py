"""Sign-in abuse limits for /auth/challenge and /auth/login: per source IP, and per TRON address
from one source IP (an IPv6 source counted by its /64: `lucid.ratelimit.policies.client_network`).

Both are counted in one round trip and charged only together, so a refused attempt costs
neither budget. Nothing is counted per address alone: attempts from other sources never spend
the budget of the address's owner, so nobody can lock someone else's address out of sign-in,
while attempts on one address stay bounded by RATE_LIMIT_SIGNIN_PER_ADDRESS per window from
each source. Call it first thing in the route, with the address as the body gives it:

    enforce_signin_limits(source_ip, body.address)
"""

from __future__ import annotations

from lucid.errors import RateLimitedError
from lucid.ratelimit.headers import rate_limit_headers
from lucid.ratelimit.limiter import Decision, Limit, RateLimiter, default_limiter
from lucid.ratelimit.policies import client_network


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
    ip = client_network(ip)  # an IPv6 source by its /64, like the public tier
    limits: list[Limit] = [(policies.signin_ip, ip)]
    if address:
        limits.append((policies.signin_address, f"{address.strip()}@{ip}"))
    decision = limiter.check_all(limits)
    if not decision.allowed:
        per = (
            "for this address from this IP address"
            if decision.policy is policies.signin_address
            else "from this IP address"
        )
        raise RateLimitedError(
            f"too many sign-in attempts {per}; retry in {decision.retry_after} s",
            extensions={"retry_after": decision.retry_after},
            headers=rate_limit_headers(decision),
        )
    return decision
