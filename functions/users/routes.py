"""GET/PATCH/DELETE /users/me, GET /users/{id}, GET /users and PUT /users/{id}/role.

The caller comes only from the authorizer context. Another user's profile answers like a missing
one (404) unless the caller is an admin; the list and role routes are admin-only (403).
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Query, Response

from lucid.auth.refresh import RefreshTokenStore
from lucid.errors import NotFoundError
from lucid.identity import Role
from lucid.store.documents import Document
from lucid.store.pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, SortOrder
from lucid.users.closure import close_account
from lucid.users.schemas import ProfilePatch, RoleChange, User, UserPage
from lucid.web.app import FunctionRouter
from lucid.web.database import DatabaseDep
from lucid.web.deps import (
    AdminCaller,
    Caller,
    Revocations,
    SettingsDep,
    TokenCaller,
    check_sign_in,
)
from lucid.web.openapi import problems
from lucid.web.repositories import SessionsDep
from lucid.web.user_repository import UsersDep

# Every route needs a signed-in caller (401 without one).
router = FunctionRouter(responses=problems(401))


async def refresh_token_store(
    database: DatabaseDep, settings: SettingsDep, revocations: Revocations
) -> RefreshTokenStore:
    """The store that revokes sign-ins (a role change or a closure revokes all of a user's)."""
    lifetime = timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS)
    return RefreshTokenStore(database, lifetime, revocations)


SignIns = Annotated[RefreshTokenStore, Depends(refresh_token_store)]

# Removing an admin holds the admins lease (lucid.users.repository): a 409 with Retry-After means
# another such change held it for longer than this request waited (5 s).
_BUSY = "; or another change to the admins is in progress (retry after Retry-After)"
CLOSE_CONFLICT = "The last admin cannot close their account" + _BUSY
DEMOTE_CONFLICT = "The last admin cannot be demoted" + _BUSY

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH)]


def _profile(document: Document, response: Response) -> User | Response:
    """A stored profile as GET and PATCH /users/me answer it: its JSON written from the stored
    values (`User.json_of`, ~40 K instructions less than the model), which FastAPI sends as it
    is (fastapi/routing.py 767-770, FastAPI 0.165) with the headers its own dump would have
    (content-length, then content-type: starlette Response.init_headers). A document it does
    not take is answered by the model; so is a request whose injected `response` a dependency
    changed (none does today): FastAPI would drop that response with ours, where it applies
    its status and appends its headers to the model's answer (797-807)."""
    if response.status_code is None and not response.raw_headers:
        body = User.json_of(document)
        if body is not None:
            return Response(body, media_type="application/json")
    return User.from_document(document)


@router.get("/users/me", response_model=User, responses=problems(404))
async def read_me(caller: Caller, users: UsersDep, response: Response) -> User | Response:
    """The caller's profile."""
    return _profile(users.get(caller.user_id), response)


@router.patch("/users/me", response_model=User, responses=problems(404))
async def update_me(
    body: ProfilePatch, caller: Caller, users: UsersDep, response: Response
) -> User | Response:
    """Change the caller's display name, email or preferences (and nothing else: 422)."""
    return _profile(users.update_profile(caller.user_id, body), response)


@router.delete(
    "/users/me",
    status_code=204,
    response_class=Response,
    responses=problems(404, 409, descriptions={409: CLOSE_CONFLICT}, retry_after={409: False}),
)
async def delete_me(
    caller: TokenCaller,
    revocations: Revocations,
    users: UsersDep,
    sessions: SessionsDep,
    sign_ins: SignIns,
) -> None:
    """Close the caller's account: profile deleted, sessions ended, every sign-in revoked."""
    # A live sign-in, not `Caller`: that one refuses an admin token whose profile is gone (401
    # "the account was closed"), which is exactly the state a closure that failed half way
    # (503) leaves, and its retry must finish the job. Closing needs no admin power.
    check_sign_in(caller, revocations)
    close_account(caller, users=users, sessions=sessions, revoke_sign_ins=sign_ins.revoke_user)


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
    responses=problems(
        403, 404, 409, descriptions={409: DEMOTE_CONFLICT}, retry_after={409: False}
    ),
)
async def change_role(
    user_id: str,
    body: RoleChange,
    caller: AdminCaller,
    users: UsersDep,
    sign_ins: SignIns,
) -> User:
    """Make a user an admin or a plain user (admins only); the last admin stays (409).

    The new role holds at once: every admin action checks the role where it is stored (a
    demoted admin's next one is 403, OWASP API5). A changed role also signs the user out
    everywhere, so that no token goes on carrying the old role and tier: they sign in again.
    The sign-out compares with the role each sign-in's tokens carry, not with the role before
    this request: when it fails after the role was written (503), the retry, which finds the
    role already set, still signs out every sign-in that carries another one.
    """
    after = users.set_role(user_id, body.role)
    sign_ins.revoke_other_roles(user_id, Role.parse(after.get("role")))
    return User.from_document(after)
