"""Tiered rate limiting in Redis: one Lua round trip per request (sliding-window
counter), with a per-instance fallback.

    RateLimiter(redis, settings)            decisions (lucid.ratelimit.limiter)
    RateLimitMiddleware(app, factory)       the tier check of every function (pure ASGI)
    enforce_signin_limits(ip, address)      the sign-in abuse limits (per IP, per address)
    default_limiter()                       the process's limiter, built once, None when off

The algorithm and its error bound are described in `lucid.ratelimit.window`.
"""

from lucid.ratelimit.headers import rate_limit_headers
from lucid.ratelimit.limiter import Decision, RateLimiter, default_limiter
from lucid.ratelimit.middleware import RateLimitMiddleware
from lucid.ratelimit.policies import Policies, Policy
from lucid.ratelimit.signin import enforce_signin_limits

__all__ = [
    "Decision",
    "Policies",
    "Policy",
    "RateLimitMiddleware",
    "RateLimiter",
    "default_limiter",
    "enforce_signin_limits",
    "rate_limit_headers",
]
