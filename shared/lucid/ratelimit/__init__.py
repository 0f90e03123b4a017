"""Tiered rate limiting in Redis: at most one Lua round trip per request (sliding-window
counter), with a per-instance fallback.

    RateLimiter(redis, settings)            decisions (lucid.ratelimit.limiter)
    enforce_signin_limits(ip, address)      the sign-in abuse limits (per IP, per address)
    default_limiter()                       the process's limiter, built once, None when off

The algorithm and its error bound are described in `lucid.ratelimit.window`; the middleware
that applies the tiers to every request is `lucid.web.ratelimit`.
"""

from lucid.ratelimit.headers import rate_limit_headers
from lucid.ratelimit.limiter import Decision, RateLimiter, default_limiter
from lucid.ratelimit.policies import Policies, Policy
from lucid.ratelimit.signin import enforce_signin_limits

__all__ = [
    "Decision",
    "Policies",
    "Policy",
    "RateLimiter",
    "default_limiter",
    "enforce_signin_limits",
    "rate_limit_headers",
]
