"""GET /health, GET /meta/info and GET /meta/health."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from lucid import __version__
from lucid.errors import ServiceUnavailableError
from lucid.store.health import check_mongodb, check_redis
from lucid.web.deps import DatabaseDep, RedisDep, SettingsDep

# Generated from infra/template.yaml by `lucid routes --write` (a test keeps it in step):
# the deployed function has no template to read.
ROUTE_MANIFEST: dict[str, Any] = json.loads(
    (Path(__file__).with_name("routes.json")).read_text(encoding="utf-8")
)

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: answers as long as the function runs; touches no dependency."""
    return {"status": "ok"}


@router.get("/meta/info")
async def info(settings: SettingsDep) -> dict[str, Any]:
    """The service, its version and stage, and the functions and routes it serves."""
    return {
        "service": settings.SERVICE_NAME,
        "version": __version__,
        "stage": settings.STAGE,
        "functions": ROUTE_MANIFEST["functions"],
    }


@router.get("/meta/health")
async def dependency_health(redis: RedisDep, database: DatabaseDep) -> dict[str, Any]:
    """Readiness: Redis and MongoDB with their latency; 503 naming whichever is down."""
    checks = [check_redis(redis), check_mongodb(database)]
    dependencies = {check.name: check.as_dict() for check in checks}
    failing = [check.name for check in checks if not check.healthy]
    if failing:
        raise ServiceUnavailableError(
            f"dependency down: {', '.join(failing)}",
            extensions={"dependencies": dependencies, "failing": failing},
        )
    return {"status": "ok", "dependencies": dependencies}
