"""GET /health, GET /meta/info and GET /meta/health."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from redis import Redis, RedisError

from lucid import __version__
from lucid.errors import ServiceUnavailableError
from lucid.store.health import DependencyReport, check_mongodb, check_redis
from lucid.web.database import DatabaseDep
from lucid.web.deps import RedisDep, SettingsDep
from lucid.web.openapi import problems


class RouteEntry(BaseModel):
    """One route of the template and who guards it."""

    model_config = ConfigDict(frozen=True)

    route: str = Field(description="the template's route key", examples=["GET /health"])
    authorizer: str | None = Field(description="the authorizer protecting it; null: public")


class FunctionRoutes(BaseModel):
    """One function of the template and the routes it serves."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the function's logical id in the template")
    routes: tuple[RouteEntry, ...]


class Liveness(BaseModel):
    """GET /health: the function runs."""

    status: Literal["ok"] = "ok"


class ServiceInfo(BaseModel):
    """GET /meta/info: what this deployment is."""

    service: str = Field(description="SERVICE_NAME")
    version: str = Field(description="the gateway's version")
    stage: str = Field(description="STAGE")
    functions: tuple[FunctionRoutes, ...]


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


def breaker_views(redis: Redis | None) -> dict[str, BreakerView]:
    """Each backend's breaker state; `unknown` for all when Redis is down (None) or cannot be
    read."""
    # Imported here: the proxy's modules (httpx among them) stay out of the cold start.
    from lucid.proxy.health import breaker_states
    from lucid.proxy.routing import BACKENDS

    if redis is not None:
        try:
            return {name: state.value for name, state in breaker_states(redis).items()}
        except (RedisError, OSError):
            pass
    return dict.fromkeys((backend.name for backend in BACKENDS), "unknown")


# Generated from infra/template.yaml by `lucid routes --write` (a test keeps it in step):
# the deployed function has no template to read.
FUNCTIONS = tuple(
    FunctionRoutes.model_validate(function)
    for function in json.loads(
        (Path(__file__).with_name("routes.json")).read_text(encoding="utf-8")
    )["functions"]
)

router = APIRouter()


@router.get("/health")
async def health() -> Liveness:
    """Liveness: answers as long as the function runs; touches no dependency."""
    return Liveness()


@router.get("/meta/info")
async def info(settings: SettingsDep) -> ServiceInfo:
    """The service, its version and stage, and the functions and routes it serves."""
    return ServiceInfo(
        service=settings.SERVICE_NAME,
        version=__version__,
        stage=settings.STAGE,
        functions=FUNCTIONS,
    )


@router.get(
    "/meta/health",
    response_model_exclude_none=True,
    responses=problems(
        503, descriptions={503: "A dependency is down: `failing` names it, `dependencies` has each"}
    ),
)
async def dependency_health(redis: RedisDep, database: DatabaseDep) -> Readiness:
    """Readiness: Redis and MongoDB with their latency, each backend's breaker state; 503 naming
    whichever dependency is down."""
    checks = [check_redis(redis), check_mongodb(database)]
    dependencies = {check.name: check.report() for check in checks}
    failing = [check.name for check in checks if not check.healthy]
    breakers = breaker_views(None if "redis" in failing else redis)
    if failing:
        raise ServiceUnavailableError(
            f"dependency down: {', '.join(failing)}",
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
