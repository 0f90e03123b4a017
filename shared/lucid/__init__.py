"""The Lucid layer: what every gateway function shares, one package per concern.

    web          FastAPI plumbing (the only package that imports FastAPI or Starlette)
    auth         TRON sign-in, tokens, keys, refresh tokens, revocations, the authorizer's decision
    users        the users repository, schemas and account closure
    sessions     the sessions repository, schemas and If-Match
    ratelimit    the tiered limiter (Redis Lua script, in-memory fallback)
    proxy        backend routing, header hygiene, circuit breaker, forwarder
    store        MongoDB and Redis clients, indexes, documents, pagination, health checks
    config, errors, observability, identity   settings, the error tree, logs/metrics, the caller

Arrows point down only (tests/shared/test_layering.py). Only what runs in Lambda is here: the
local-only servers live in the local edge's package (`lucid_edge.local`).
"""

__version__ = "0.1.0"
