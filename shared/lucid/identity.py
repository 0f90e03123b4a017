"""Who is calling, as API Gateway vouches for it: the caller in the Lambda authorizer's context.

Identity comes only from `requestContext.authorizer.lambda` (what our authorizer returned for the
request's token); headers a client sends (X-User-Id, X-Forwarded-For, ...) are never trusted.
This module is plain data: the web package reads it out of the request, domain code receives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def caller_from_context(request_context: Mapping[str, Any]) -> CallerIdentity | None:
    """The caller in an API Gateway `requestContext`, or None when no authorizer vouched."""
    authorizer = request_context.get("authorizer") or {}
    context = authorizer.get("lambda") if isinstance(authorizer, Mapping) else None
    if not isinstance(context, Mapping) or not context.get("user_id"):
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
