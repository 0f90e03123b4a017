"""What routes declare with `Annotated` aliases; no route reads the raw event itself.

Identity comes only from the Lambda authorizer's context (`requestContext.authorizer.lambda`),
the client address only from `requestContext.http.sourceIp`; headers a client sends (X-User-Id,
X-Forwarded-For, ...) are never trusted for either.

API Gateway may serve that context from a decision it cached up to AuthorizerTtlSeconds ago, so
the functions check what may have changed since, at every call (ARCHITECTURE.md):

    Caller        the token's sign-in is not revoked (logout, refresh-token reuse, role change,
                  account closure: `lucid.auth.revocation`), else 401; an admin token's role is
                  replaced with the role stored now (a demoted admin acts as a user)
    AdminCaller   the same revocation check (401), then the stored role is admin, else 403
    TokenCaller   what the authorizer vouched for, unchecked: only for POST /auth/logout, which
                  ending an already revoked sign-in does no harm to (RFC 7009 section 2.2)
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from lucid.auth.revocation import RevocationList, RevocationRecord
from lucid.config import Settings, get_settings
from lucid.errors import AuthenticationError, ForbiddenError, InvalidTokenError
from lucid.identity import CallerIdentity, Role
from lucid.store import resp
from lucid.web.middleware import request_facts

# Re-exported: where routes have always found them (lucid.web.settings imports no driver).
from lucid.web.settings import SettingsDep as SettingsDep
from lucid.web.settings import current_settings as current_settings
from lucid.web.stores import stores_of

if TYPE_CHECKING:
    from pymongo.database import Database

    from lucid.store.documents import Document

# pymongo is imported when a check first needs MongoDB (an admin's stored role, or revocations
# when Redis cannot answer), not at import: the proxy's routes need no database otherwise, and
# pymongo costs 30-55 ms of a cold start (`make bench coldstart`; lucid.web.database).
DatabaseFactory = Callable[[], "Database[Document]"]

# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, a hop that costs more than the dependency itself on every request. The caller and the
# source IP come from the request's facts, parsed once per request (`lucid.web.middleware`).


async def optional_caller(request: Request) -> CallerIdentity | None:
    """The caller when the route was reached through the authorizer, else None."""
    return request_facts(request.scope).caller


def _vouched(request: Request) -> CallerIdentity:
    caller = request_facts(request.scope).caller
    if caller is None:
        raise AuthenticationError("this route needs a signed-in caller")
    return caller


async def token_caller(request: Request) -> CallerIdentity:
    """The caller the authorizer vouched for; 401 without one (defence in depth)."""
    return _vouched(request)


async def current_redis(request: Request) -> resp.Redis:
    """The app's Redis client (the process's unless `lucid.web.stores.use_stores` says other)."""
    return stores_of(request.scope).redis()


def _mongo_record(database: DatabaseFactory) -> RevocationRecord:
    from lucid.auth.revocation_record import MongoRevocationRecord

    return MongoRevocationRecord(database())


def _stored_role(database: DatabaseFactory, user_id: str) -> Role | None:
    from lucid.users.roles import stored_role

    return stored_role(database(), user_id)


async def database_factory(request: Request) -> DatabaseFactory:
    """How to reach the app's MongoDB database when a check needs it, not before: a function
    that checks callers opens no MongoDB connection it never uses."""
    return stores_of(request.scope).database


RedisDep = Annotated[resp.Redis, Depends(current_redis)]
DatabaseFactoryDep = Annotated[DatabaseFactory, Depends(database_factory)]


def revocations_on(client: resp.Redis, database: DatabaseFactory) -> RevocationList:
    """Revoked sign-ins: the Redis copy, and the MongoDB record when Redis cannot answer.

    The list of the last stores and settings asked for is kept and given again (one RevocationList
    serves any number of checks and threads, as the authorizer's one per process does): building
    it cost 8.9 K instructions at every signed-in request (valgrind). It keeps no answer, only
    how to ask: every check still asks Redis (lucid.auth.revocation).
    """
    global _last_revocations
    settings = get_settings()
    last = _last_revocations
    if last is not None and last[0] is client and last[1] is database and last[2] is settings:
        return last[3]
    revocations = RevocationList(
        client,
        lambda: _mongo_record(database),
        token_lifetime_seconds=60 * settings.TOKEN_EXPIRE_MINUTES,
    )
    # One assignment: a thread reading it meanwhile gets the old tuple or the new, whole.
    _last_revocations = (client, database, settings, revocations)
    return revocations


# (client, database factory, settings, their list): by identity, so other stores (`use_stores`)
# or other settings (a test's) get a list of their own, and only the last one is kept alive.
_last_revocations: "tuple[resp.Redis, DatabaseFactory, Settings, RevocationList] | None" = None


async def revocation_list(client: RedisDep, database: DatabaseFactoryDep) -> RevocationList:
    """The revoked sign-ins of the process's stores."""
    return revocations_on(client, database)


def check_sign_in(caller: CallerIdentity, revocations: RevocationList) -> None:
    """401 unless the caller's token is unexpired and its sign-in live (503 when neither store
    can tell). The expiry is checked here too: API Gateway may pass on an Allow it cached before
    the token expired, for up to AuthorizerTtlSeconds, longer than revocations are kept. The
    clock leeway is JWT_LEEWAY_SECONDS, the one the authorizer's decoding allows, and the
    boundary is its too: refused from exp + leeway on (RFC 7519 section 4.1.4, "on or after";
    PyJWT's _validate_exp raises when exp <= now - leeway)."""
    leeway = get_settings().JWT_LEEWAY_SECONDS
    if caller.expires_at is not None and caller.expires_at + leeway <= time.time():
        raise InvalidTokenError("token has expired")
    if not caller.session_id:
        raise InvalidTokenError("the token names no sign-in; sign in again")
    if revocations.is_revoked(caller.session_id):
        raise InvalidTokenError("this sign-in was revoked; sign in again")


# The two checks below take the request alone and find the stores through it
# (`lucid.web.stores`), not through dependencies of their own: every dependency FastAPI resolves
# costs 10-20 us per request, on every signed-in call.


async def require_caller(request: Request) -> CallerIdentity:
    """The caller, whose sign-in is live (401 otherwise), with its admin role checked in storage."""
    caller = _vouched(request)
    stores = stores_of(request.scope)
    database = stores.database
    check_sign_in(caller, revocations_on(stores.redis(), database))
    if not caller.is_admin:
        return caller  # a plain user's token grants nothing storage could take away
    role = _stored_role(database, caller.user_id)
    if role is None:
        raise InvalidTokenError("the account was closed")
    return caller if role == Role.ADMIN else caller._replace(role=role)


async def require_admin(request: Request) -> CallerIdentity:
    """The caller, who must be an admin now, where the role is stored (403 otherwise)."""
    caller = _vouched(request)
    stores = stores_of(request.scope)
    database = stores.database
    # The sign-in first: a revoked token is the 401 that says "sign in again" on every route
    # (README, Revocation), also a promoted user's, which a 403 "for admins" would mislead.
    check_sign_in(caller, revocations_on(stores.redis(), database))
    if not caller.is_admin or _stored_role(database, caller.user_id) != Role.ADMIN:
        raise ForbiddenError("this route is for admins")
    return caller


async def source_ip(request: Request) -> str:
    """The client address API Gateway saw on the connection."""
    return request_facts(request.scope).source_ip or "0.0.0.0"  # noqa: S104


Caller = Annotated[CallerIdentity, Depends(require_caller)]
TokenCaller = Annotated[CallerIdentity, Depends(token_caller)]
OptionalCaller = Annotated[CallerIdentity | None, Depends(optional_caller)]
AdminCaller = Annotated[CallerIdentity, Depends(require_admin)]
SourceIp = Annotated[str, Depends(source_ip)]
Revocations = Annotated[RevocationList, Depends(revocation_list)]
