"""Who is calling, as API Gateway vouches for it, and the one list of roles.

Identity comes only from the Lambda authorizer's context (`requestContext.authorizer.lambda`,
what our authorizer returned for the request's token) and the client address only from
`requestContext.http.sourceIp`; headers a client sends (X-User-Id, X-Forwarded-For, ...) are
never trusted for either. This module is plain data and parsing: `lucid.web` reads a request's
event with it once, domain code receives the `CallerIdentity`.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple


class Role(StrEnum):
    """What a user may do. Stored on the user, carried in tokens and the authorizer context."""

    USER = "user"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: object) -> "Role":
        """The role named `value`; anything else is the least privileged role."""
        # Module constants, not cls.ADMIN.value: each enum member and `.value` read is a
        # Python-level lookup (5.5 K instructions a parse, 2.6 K now; valgrind), at every
        # signed-in request (caller_from_event).
        return _ADMIN if value == _ADMIN_NAME else _USER


_ADMIN, _USER, _ADMIN_NAME = Role.ADMIN, Role.USER, Role.ADMIN.value


class Tier(StrEnum):
    """The rate-limit tier a request is counted at (`lucid.ratelimit.policies`)."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    ADMIN = "admin"


_AUTHENTICATED = Tier.AUTHENTICATED.value


def tier_for_role(role: Role) -> Tier:
    """The tier a role signs in with (carried in tokens and the authorizer context as `tier`)."""
    return Tier.ADMIN if role == Role.ADMIN else Tier.AUTHENTICATED


class CallerIdentity(NamedTuple):
    """The signed-in caller, as the authorizer vouched for it."""

    user_id: str
    address: str
    role: Role
    tier: str
    jti: str
    expires_at: int | None = None  # the access token's exp, when the authorizer passed it on
    session_id: str = ""  # the token's sign-in (`sid`); empty when the context lacks it

    @property
    def is_admin(self) -> bool:
        """True when the caller's role is admin: as the token says it, until `lucid.web.deps`
        has replaced it with the role stored at the time of the request."""
        return self.role == Role.ADMIN


def _request_context(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    context = (event or {}).get("requestContext")
    return context if isinstance(context, Mapping) else {}


def caller_from_event(event: Mapping[str, Any] | None) -> CallerIdentity | None:
    """The caller in an API Gateway event's authorizer context; None when no authorizer vouched."""
    authorizer = _request_context(event).get("authorizer")
    # An event is parsed JSON: a dict is taken as such before the Mapping ABC's isinstance
    # (ABCMeta.__instancecheck__, ~1 K instructions a check; valgrind).
    context = (
        authorizer.get("lambda")
        if type(authorizer) is dict or isinstance(authorizer, Mapping)
        else None
    )
    if not (type(context) is dict or isinstance(context, Mapping)) or not context.get("user_id"):
        return None
    get = context.get
    # Positional: CallerIdentity's fields in their order (user_id, address, role, tier, jti,
    # expires_at, session_id); keywords cost the generated __new__ a parse at every request.
    return CallerIdentity(
        str(context["user_id"]),
        str(get("address", "")),
        Role.parse(get("role")),
        str(get("tier", _AUTHENTICATED)),
        str(get("jti", "")),
        _epoch_seconds(get("exp")),
        str(get("sid", "")),
    )


def source_ip_from_event(event: Mapping[str, Any] | None) -> str | None:
    """The client address API Gateway saw on the connection (`requestContext.http.sourceIp`)."""
    http = _request_context(event).get("http")
    source_ip = http.get("sourceIp") if isinstance(http, Mapping) else None
    return str(source_ip) if source_ip else None


def _epoch_seconds(value: object) -> int | None:
    try:
        # A tuple, not `int | float | str`: that builds a types.UnionType at every call.
        return int(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None
