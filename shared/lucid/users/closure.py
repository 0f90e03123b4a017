"""DELETE /users/me: close an account without leaving anything usable or orphaned behind.

Order matters for a request that fails half way (MongoDB or Redis down → 503): every step is
idempotent and the caller's access token is denylisted last, so the client can simply retry the
DELETE with the same token and the remaining steps complete.

1. the last admin may not leave (409, nothing changed);
2. every refresh-token family of the user is revoked (no new access tokens);
3. the user document is deleted;
4. every session of the user that has not ended is ended (after 3, so a session created while
   closing is still caught);
5. the access token of this request is denylisted until it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from lucid.errors import NotFoundError
from lucid.identity import CallerIdentity
from lucid.sessions.repository import SessionRepository
from lucid.users.repository import UserRepository


@dataclass(frozen=True, slots=True)
class ClosedAccount:
    """What closing the account did."""

    user_deleted: bool
    sessions_ended: int


def close_account(
    caller: CallerIdentity,
    *,
    users: UserRepository,
    sessions: SessionRepository,
    revoke_refresh_families: Callable[[str], object],
    deny_access_token: Callable[[str, int], None],
    token_expires_at: int | None,
    token_lifetime_seconds: int,
) -> ClosedAccount:
    """Close the caller's account (see the module docstring for the steps and their order).

    `token_expires_at` is the access token's `exp` when the authorizer passed it on; otherwise
    the token is denylisted for a full token lifetime, which is never shorter than what is left.
    """
    with suppress(NotFoundError):  # a retry after the document was already deleted
        users.demote(caller.user_id)
    revoke_refresh_families(caller.user_id)
    deleted = users.delete(caller.user_id)
    ended = sessions.end_all_of(caller.user_id)
    if caller.jti:
        expires_at = token_expires_at or int(time.time()) + token_lifetime_seconds
        deny_access_token(caller.jti, expires_at)
    return ClosedAccount(user_deleted=deleted, sessions_ended=ended)
