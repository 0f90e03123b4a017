"""GET /health, GET /meta/info and GET /meta/health: public, for clients, load balancers and
uptime checks.

What they tell anyone who asks is chosen: /meta/info names the service, its version and stage,
which is what a client needs to know which deployment it talks to; how the deployment is built
(its functions, which route each serves, which authorizer guards which) stays with the operators,
who have the template (`lucid routes` prints it). The API's routes are its documentation's.
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from lucid import __version__
from lucid.errors import ServiceUnavailableError
from lucid.store.health import DependencyReport, Unusable, check_mongodb, check_redis
from lucid.web.app import FunctionRouter
from lucid.web.openapi import problems
from lucid.web.readiness import ReadinessDatabase, ReadinessRedis
from lucid.web.settings import SettingsDep

if TYPE_CHECKING:
    from lucid.store import resp


class Liveness(BaseModel):
    """GET /health: the function runs."""

    status: Literal["ok"] = "ok"


class ServiceInfo(BaseModel):
    """GET /meta/info: what this deployment is."""

    service: str = Field(description="SERVICE_NAME")
    version: str = Field(description="the gateway's version")
    stage: str = Field(description="STAGE")


BreakerView = Literal["closed", "half_open", "open", "unknown"]


class Readiness(BaseModel):
    """GET /meta/health when every dependency answers (503 problem+json naming it otherwise)."""

    status: Literal["ok"] = "ok"
    dependencies: dict[str, DependencyReport] = Field(description="by name: redis, mongodb")
    breakers: dict[str, BreakerView] = Field(
        description="each backend's circuit breaker as the proxy instances share it in Redis "
        "(`unknown` while Redis cannot be read); an open breaker does not fail this check",
        examples=[{"blockchain": "closed", "session": "open", "node": "closed"}],
    )


def breaker_views(client: "resp.Redis | None") -> dict[str, BreakerView]:
    """Each backend's breaker state; `unknown` for all when Redis is down (None) or cannot be
    read."""
    # Imported here: the proxy's modules (httpx among them) and the Redis client stay out of
    # the cold start, as the readiness checks' drivers do.
    from lucid.proxy.health import breaker_states
    from lucid.proxy.routing import BACKENDS
    from lucid.store.resp import RedisError

    if client is not None:
        try:
            return {name: state.value for name, state in breaker_states(client).items()}
        except (RedisError, OSError):
            pass
    return dict.fromkeys((backend.name for backend in BACKENDS), "unknown")


router = FunctionRouter(rate_limited=False)


@router.get("/health")
async def health() -> Liveness:
    """Liveness: answers as long as the function runs; touches no dependency."""
    return Liveness()


@router.get("/meta/info")
async def info(settings: SettingsDep) -> ServiceInfo:
    """The service, its version and stage (nothing about how the deployment is built)."""
    return ServiceInfo(service=settings.SERVICE_NAME, version=__version__, stage=settings.STAGE)


@router.get(
    "/meta/health",
    response_model_exclude_none=True,
    responses=problems(
        503, descriptions={503: "A dependency is down: `failing` names it, `dependencies` has each"}
    ),
)
async def dependency_health(redis: ReadinessRedis, database: ReadinessDatabase) -> Readiness:
    """Readiness: Redis and MongoDB with their latency, each backend's breaker state; 503 naming
    whichever dependency is down."""
    # The first call of a cold start imports both drivers (lucid.web.readiness).
    checks = [check_redis(redis), check_mongodb(database)]
    dependencies = {check.name: check.report() for check in checks}
    failing = [check.name for check in checks if not check.healthy]
    breakers = breaker_views(None if isinstance(redis, Unusable) or "redis" in failing else redis)
    if failing:
        # "down", or what a store that answers but refuses the function's credentials does.
        said = [
            f"{check.name} (refused the credentials)" if check.refused else check.name
            for check in checks
            if not check.healthy
        ]
        raise ServiceUnavailableError(
            f"dependency down: {', '.join(said)}",
            extensions={
                "dependencies": {
                    name: report.model_dump(exclude_none=True)
                    for name, report in dependencies.items()
                },
                "failing": failing,
                "breakers": breakers,
            },
        )
    return Readiness(dependencies=dependencies, breakers=breakers)
