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

from lucid.errors import LucidError
from lucid.store.health import Unusable

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

    from lucid.store.documents import Document


async def readiness_redis() -> redis.Redis | Unusable:
    """The process's Redis client (`lucid.store.redis_client`), imported on first use."""
    from lucid.store.redis_client import get_redis

    try:
        return get_redis()
    except LucidError:
        raise  # a secret AWS would not give (SecretUnavailableError): its own 503
    except (RuntimeError, ValueError) as error:
        return Unusable(error)


async def readiness_database() -> Database[Document] | Unusable:
    """The process's MongoDB database (`lucid.store.mongo`), imported on first use."""
    from pymongo.errors import ConfigurationError

    from lucid.store.mongo import get_database

    try:
        return get_database()
    except LucidError:
        raise
    except (RuntimeError, ValueError, ConfigurationError) as error:
        return Unusable(error)


# The types are forward references: FastAPI needs only the dependency, and evaluating them here
# would import the drivers.
ReadinessRedis = Annotated["redis.Redis | Unusable", Depends(readiness_redis)]
ReadinessDatabase = Annotated["Database[Document] | Unusable", Depends(readiness_database)]
