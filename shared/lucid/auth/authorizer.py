"""The Lambda REQUEST authorizer's decision (HTTP API, payload 2.0, simple responses).

    {"isAuthorized": true, "context": {"user_id", "address", "role", "tier", "jti", "sid", "exp"}}
    {"isAuthorized": false}

API Gateway answers 401 itself when the Authorization header is missing (identity source), 403
for `isAuthorized: false`, and passes the context to the function at
`requestContext.authorizer.lambda`. A decision is cached per Authorization value for the
template's AuthorizerTtlSeconds, a refusal as well as an allowance: only what the token proves
is refused (malformed, forged, expired, or of a revoked sign-in). Whether the sign-in was
revoked comes from Redis, or from MongoDB when Redis cannot answer (`lucid.auth.revocation`);
when neither can, `authorize` raises: an authorizer error is a 500 that API Gateway does not
cache (aws-facts.md section 4: AWS documents caching of the authorizer's *result* only; every
emulator we know of, like the local edge, never caches an error), so the caller is served again
as soon as one store is back, instead of being refused for the TTL by a cached "no".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lucid.auth.revocation import RevocationList
from lucid.auth.tokens import TokenService
from lucid.errors import InvalidTokenError

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


def _request_keys(event: Mapping[str, Any], status: int) -> dict[str, Any]:
    """What an operator needs beside the line's correlation_id (the request id): the route, the
    status API Gateway answers, the client's address. Never the token."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    return {
        "route": event.get("routeKey", ""),
        "status": status,
        "source_ip": http.get("sourceIp") if isinstance(http, Mapping) else None,
    }


def _denied(event: Mapping[str, Any], reason: str) -> dict[str, Any]:
    logger.info("denied", extra={**_request_keys(event, 403), "reason": reason})
    return dict(DENY)


def authorize(
    event: Mapping[str, Any], *, tokens: TokenService, revocations: RevocationList
) -> dict[str, Any]:
    """The simple response for `event`: allow with the caller's context, or deny.

    ServiceUnavailableError (an authorizer error, never cached) when neither Redis nor MongoDB
    can say whether the token's sign-in was revoked.
    """
    token = bearer_token(authorization_header(event))
    if token is None:
        return _denied(event, "no bearer token")
    try:
        claims = tokens.decode(token)
    except InvalidTokenError as error:
        return _denied(event, error.detail)
    # ServiceUnavailableError when neither store answers: logged once, without a traceback, by
    # `lucid.observability.instrument` ("invocation failed", its class, route and client).
    if revocations.is_revoked(claims.sid):
        return _denied(event, "the sign-in was revoked")
    return {
        "isAuthorized": True,
        "context": {
            "user_id": claims.sub,
            "address": claims.addr,
            "role": claims.role,
            "tier": claims.tier,
            "jti": claims.jti,
            "sid": claims.sid,
            "exp": claims.exp,
        },
    }
