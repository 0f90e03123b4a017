"""What routes declare with `Annotated` aliases; no route reads the raw event itself.

Identity comes only from the Lambda authorizer's context (`requestContext.authorizer.lambda`),
the client address only from `requestContext.http.sourceIp`; headers a client sends (X-User-Id,
X-Forwarded-For, ...) are never trusted for either.
"""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Request

from lucid.config import Settings, get_settings
from lucid.errors import AuthenticationError, ForbiddenError
from lucid.identity import CallerIdentity
from lucid.store.redis_client import get_redis
from lucid.web.middleware import request_facts

# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, a hop that costs more than the dependency itself on every request. The caller and the
# source IP come from the request's facts, parsed once per request (`lucid.web.middleware`).


async def optional_caller(request: Request) -> CallerIdentity | None:
    """The caller when the route was reached through the authorizer, else None."""
    return request_facts(request.scope).caller


async def require_caller(request: Request) -> CallerIdentity:
    """The caller; 401 when the request carries no authorizer context (defence in depth)."""
    caller = request_facts(request.scope).caller
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
    return request_facts(request.scope).source_ip or "0.0.0.0"  # noqa: S104


async def current_settings() -> Settings:
    """The process's settings (override this in tests, not `get_settings`)."""
    return get_settings()


async def current_redis() -> redis.Redis:
    """The process's Redis client."""
    return get_redis()


Caller = Annotated[CallerIdentity, Depends(require_caller)]
OptionalCaller = Annotated[CallerIdentity | None, Depends(optional_caller)]
AdminCaller = Annotated[CallerIdentity, Depends(require_admin)]
SourceIp = Annotated[str, Depends(source_ip)]
SettingsDep = Annotated[Settings, Depends(current_settings)]
RedisDep = Annotated[redis.Redis, Depends(current_redis)]
