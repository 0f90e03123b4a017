"""The backend proxy: public path prefixes forwarded to the backend clusters.

    /chain/*      -> BLOCKCHAIN_SERVICE_URL   (blockchain cluster)
    /manifests/*  -> SESSION_SERVICE_URL      (session-management cluster: manifests and trust
    /trust/*      -> SESSION_SERVICE_URL       records are artefacts of sessions)
    /nodes/*      -> NODE_SERVICE_URL         (node management)

Modules: `routing` (backend choice, path safety, the upstream URL), `headers` (hygiene both
ways), `breaker` + `breaker_store` (the circuit breaker shared through Redis), `forwarder`
(retries, timeouts, bounded streaming, error mapping), `client` (built once per cold start).
"""

from lucid.proxy.breaker import BreakerPolicy, CircuitBreaker, Permit
from lucid.proxy.breaker_store import (
    BreakerState,
    FallbackStore,
    LocalBreakerStore,
    RedisBreakerStore,
)
from lucid.proxy.client import (
    build_http_client,
    build_proxy,
    build_store,
    get_proxy,
)
from lucid.proxy.forwarder import (
    IDEMPOTENT_METHODS,
    MAX_RESPONSE_BYTES,
    Proxy,
    ProxyRequest,
    ProxyResponse,
    backoff_delays,
)
from lucid.proxy.routing import ROUTES, Backend, backend_for, check_remainder

__all__ = [
    "IDEMPOTENT_METHODS",
    "MAX_RESPONSE_BYTES",
    "ROUTES",
    "Backend",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "FallbackStore",
    "LocalBreakerStore",
    "Permit",
    "Proxy",
    "ProxyRequest",
    "ProxyResponse",
    "RedisBreakerStore",
    "backend_for",
    "backoff_delays",
    "build_http_client",
    "build_proxy",
    "build_store",
    "check_remainder",
    "get_proxy",
]
