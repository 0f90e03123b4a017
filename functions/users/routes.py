"""GET/PATCH/DELETE /users/me, GET /users/{id}, GET /users and PUT /users/{id}/role.

The caller comes only from the authorizer context. Another user's profile answers like a missing
one (404) unless the caller is an admin; the list and role routes are admin-only (403).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from lucid.auth.denylist import deny_token
from lucid.auth.refresh import revoke_user_access
from lucid.errors import NotFoundError
from lucid.identity import Role
from lucid.store.pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, SortOrder
from lucid.users.closure import close_account
from lucid.users.schemas import ProfilePatch, RoleChange, User, UserPage
from lucid.web.database import DatabaseDep
from lucid.web.deps import AdminCaller, Caller, RedisDep, SettingsDep
from lucid.web.openapi import problems
from lucid.web.repositories import SessionsDep, UsersDep

# Every route needs a signed-in caller (401 without one).
router = APIRouter(responses=problems(401))

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH)]


@router.get("/users/me", responses=problems(404))
async def read_me(caller: Caller, users: UsersDep) -> User:
    """The caller's profile."""
    return User.from_document(users.get(caller.user_id))


@router.patch("/users/me", responses=problems(404))
async def update_me(body: ProfilePatch, caller: Caller, users: UsersDep) -> User:
    """Change the caller's display name, email or preferences (and nothing else: 422)."""
    return User.from_document(users.update_profile(caller.user_id, body))


@router.delete(
    "/users/me",
    status_code=204,
    response_class=Response,
    responses=problems(404, 409, descriptions={409: "The last admin cannot close their account"}),
)
async def delete_me(
    caller: Caller,
    users: UsersDep,
    sessions: SessionsDep,
    database: DatabaseDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> None:
    """Close the caller's account: tokens revoked, sessions ended, profile deleted."""
    close_account(
        caller,
        users=users,
        sessions=sessions,
        revoke_refresh_families=lambda user_id: revoke_user_access(
            database, redis, user_id, timedelta(minutes=settings.TOKEN_EXPIRE_MINUTES)
        ),
        deny_access_token=lambda jti, expires_at: deny_token(redis, jti, expires_at),
        token_expires_at=caller.expires_at,
        token_lifetime_seconds=60 * settings.TOKEN_EXPIRE_MINUTES,
    )


@router.get("/users", responses=problems(403))
async def list_users(
    caller: AdminCaller,
    users: UsersDep,
    role: Role | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    sort: SortOrder = "-created_at",
) -> UserPage:
    """All users, optionally of one role (admins only)."""
    page = users.list(role=role, limit=limit, cursor=cursor, sort=sort)
    return UserPage(
        items=[User.from_document(document) for document in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/users/{user_id}", responses=problems(404))
async def read_user(user_id: str, caller: Caller, users: UsersDep) -> User:
    """A user's profile: the caller's own, or anyone's for an admin; 404 otherwise."""
    if user_id != caller.user_id and not caller.is_admin:
        raise NotFoundError("no such user")
    return User.from_document(users.get(user_id))


@router.put(
    "/users/{user_id}/role",
    responses=problems(403, 404, 409, descriptions={409: "The last admin cannot be demoted"}),
)
async def change_role(
    user_id: str,
    body: RoleChange,
    caller: AdminCaller,
    users: UsersDep,
    database: DatabaseDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> User:
    """Make a user an admin or a plain user (admins only); the last admin stays (409).

    A changed role signs the user out everywhere: tokens carry the role, and a demoted admin
    must not keep admin powers until their token expires (OWASP API5). They sign in again.
    """
    before = users.get(user_id)
    after = users.set_role(user_id, body.role)
    if after.get("role") != before.get("role"):
        lifetime = timedelta(minutes=settings.TOKEN_EXPIRE_MINUTES)
        revoke_user_access(database, redis, user_id, lifetime)
    return User.from_document(after)
