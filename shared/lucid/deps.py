"""What routes declare with `Annotated` aliases; no route reads the raw event itself.

Identity comes only from the Lambda authorizer's context (`requestContext.authorizer.lambda`),
the client address only from `requestContext.http.sourceIp`; headers a client sends (X-User-Id,
X-Forwarded-For, ...) are never trusted for either.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import Depends, Request
from pymongo.database import Database

from lucid.config import Settings, get_settings
from lucid.errors import AuthenticationError, ForbiddenError
from lucid.middleware import request_context
from lucid.mongo import get_database
from lucid.redis_client import get_redis

ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """The signed-in caller, as the authorizer vouched for it."""

    user_id: str
    address: str
    role: str
    tier: str
    jti: str
    expires_at: int | None = None  # the access token's exp, when the authorizer passed it on

    @property
    def is_admin(self) -> bool:
        """True when the caller holds the admin role."""
        return self.role == ADMIN_ROLE


def caller_from_scope(scope: MutableMapping[str, Any]) -> CallerIdentity | None:
    """The caller in the authorizer context of the event behind `scope`, if any."""
    authorizer = request_context(scope).get("authorizer") or {}
    context = authorizer.get("lambda") if isinstance(authorizer, dict) else None
    if not isinstance(context, dict) or not context.get("user_id"):
        return None
    return CallerIdentity(
        user_id=str(context["user_id"]),
        address=str(context.get("address", "")),
        role=str(context.get("role", "user")),
        tier=str(context.get("tier", "authenticated")),
        jti=str(context.get("jti", "")),
        expires_at=_epoch_seconds(context.get("exp")),
    )


def _epoch_seconds(value: object) -> int | None:
    try:
        return int(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, a hop that costs more than the dependency itself on every request.


async def optional_caller(request: Request) -> CallerIdentity | None:
    """The caller when the route was reached through the authorizer, else None."""
    return caller_from_scope(request.scope)


async def require_caller(request: Request) -> CallerIdentity:
    """The caller; 401 when the request carries no authorizer context (defence in depth)."""
    caller = caller_from_scope(request.scope)
    if caller is None:
        raise AuthenticationError("this route needs a signed-in caller")
    return caller


async def require_admin(
    caller: Annotated[CallerIdentity, Depends(require_caller)],
) -> CallerIdentity:
    """The caller, who must be an admin (403 otherwise)."""
    if not caller.is_admin:
        raise ForbiddenError("this route is for admins")
    return caller


async def source_ip(request: Request) -> str:
    """The client address API Gateway saw on the connection."""
    return str(request_context(request.scope).get("http", {}).get("sourceIp", "0.0.0.0"))  # noqa: S104


async def current_settings() -> Settings:
    """The process's settings (override this in tests, not `get_settings`)."""
    return get_settings()


async def current_redis() -> redis.Redis:
    """The process's Redis client."""
    return get_redis()


async def current_database() -> Database[dict[str, Any]]:
    """The process's MongoDB database."""
    return get_database()


Caller = Annotated[CallerIdentity, Depends(require_caller)]
OptionalCaller = Annotated[CallerIdentity | None, Depends(optional_caller)]
AdminCaller = Annotated[CallerIdentity, Depends(require_admin)]
SourceIp = Annotated[str, Depends(source_ip)]
SettingsDep = Annotated[Settings, Depends(current_settings)]
RedisDep = Annotated[redis.Redis, Depends(current_redis)]
DatabaseDep = Annotated[Database[dict[str, Any]], Depends(current_database)]
