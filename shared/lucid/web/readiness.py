"""The clients GET /meta/health checks, as route dependencies that import their drivers when
the route first runs. A client its settings cannot build is reported down (`Unusable`); a
secret AWS would not give (SecretUnavailableError) is its own 503.

The meta function's other routes (GET /health, /meta/info: what load balancers and uptime checks
poll) need neither Redis nor MongoDB, so the meta function does not import the Redis client and
pymongo at cold start (`make bench coldstart`); its first /meta/health pays them.
Every other function needs both at its first real request and imports them with its routes
(`lucid.web.deps`, `lucid.web.database`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from lucid.store.health import Unusable
from lucid.store.unusable import StoreUnusableError

if TYPE_CHECKING:
    from pymongo.database import Database

    from lucid.store import resp
    from lucid.store.documents import Document


async def readiness_redis() -> resp.Redis | Unusable:
    """The process's Redis client (`lucid.store.redis_client`), imported on first use."""
    from lucid.store.redis_client import get_redis

    try:
        return get_redis()
    except StoreUnusableError as error:  # no REDIS_URI, or one the client refuses
        return Unusable(error.cause)


async def readiness_database() -> Database[Document] | Unusable:
    """The process's MongoDB database (`lucid.store.mongo`), imported on first use."""
    from lucid.store.mongo import get_database

    try:
        return get_database()
    except StoreUnusableError as error:  # no MONGODB_URI, or one pymongo refuses
        return Unusable(error.cause)


# The types are forward references: FastAPI needs only the dependency, and evaluating them here
# would import the drivers.
ReadinessRedis = Annotated["resp.Redis | Unusable", Depends(readiness_redis)]
ReadinessDatabase = Annotated["Database[Document] | Unusable", Depends(readiness_database)]
