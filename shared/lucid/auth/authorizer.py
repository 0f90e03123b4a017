"""The Lambda REQUEST authorizer's decision (HTTP API, payload 2.0, simple responses).

    {"isAuthorized": true, "context": {"user_id", "address", "role", "tier", "jti", "exp"}}
    {"isAuthorized": false}

API Gateway answers 401 itself when the Authorization header is missing (identity source), 403
for `isAuthorized: false`, and passes the context to the function at
`requestContext.authorizer.lambda`. A decision is cached per Authorization value for the
template's AuthorizerTtlSeconds, so a logged-out token stays usable at most that long. When the
denylist cannot be read the authorizer refuses (fails closed): a revoked token must not pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis

from lucid.auth.denylist import is_token_denied
from lucid.auth.tokens import TokenService
from lucid.errors import InvalidTokenError, ServiceUnavailableError

logger = logging.getLogger("lucid.auth.authorizer")

DENY: dict[str, Any] = {"isAuthorized": False}


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def authorization_header(event: Mapping[str, Any]) -> str | None:
    """The Authorization value of an authorizer event (headers, else the identity source)."""
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == "authorization":
            return str(value)
    sources = event.get("identitySource") or []
    return str(sources[0]) if sources else None


def authorize(
    event: Mapping[str, Any], *, tokens: TokenService, redis_client: redis.Redis
) -> dict[str, Any]:
    """The simple response for `event`: allow with the caller's context, or deny."""
    route = event.get("routeKey", "")
    token = bearer_token(authorization_header(event))
    if token is None:
        logger.info("denied", extra={"route": route, "reason": "no bearer token"})
        return dict(DENY)
    try:
        claims = tokens.decode(token)
    except InvalidTokenError as error:
        logger.info("denied", extra={"route": route, "reason": error.detail})
        return dict(DENY)
    try:
        revoked = is_token_denied(redis_client, claims.jti)
    except ServiceUnavailableError:
        logger.error("denied: the token denylist is unavailable", extra={"route": route})
        return dict(DENY)
    if revoked:
        logger.info("denied", extra={"route": route, "reason": "token was revoked"})
        return dict(DENY)
    return {
        "isAuthorized": True,
        "context": {
            "user_id": claims.sub,
            "address": claims.addr,
            "role": claims.role,
            "tier": claims.tier,
            "jti": claims.jti,
            "exp": claims.exp,
        },
    }
