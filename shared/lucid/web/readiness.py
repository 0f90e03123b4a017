"""The clients GET /meta/health checks, as route dependencies that import their drivers when
the route first runs.

The meta function's other routes (GET /health, /meta/info: what load balancers and uptime checks
poll) need neither Redis nor MongoDB, so the meta function does not import redis-py and pymongo
at cold start (about 90 ms of CPU, `make bench coldstart`); its first /meta/health pays them.
Every other function needs both at its first real request and imports them with its routes
(`lucid.web.deps`, `lucid.web.database`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

    from lucid.store.documents import Document


async def readiness_redis() -> redis.Redis:
    """The process's Redis client (`lucid.store.redis_client`), imported on first use."""
    from lucid.store.redis_client import get_redis

    return get_redis()


async def readiness_database() -> Database[Document]:
    """The process's MongoDB database (`lucid.store.mongo`), imported on first use."""
    from lucid.store.mongo import get_database

    return get_database()


# The types are forward references: FastAPI needs only the dependency, and evaluating them here
# would import the drivers.
ReadinessRedis = Annotated["redis.Redis", Depends(readiness_redis)]
ReadinessDatabase = Annotated["Database[Document]", Depends(readiness_database)]
