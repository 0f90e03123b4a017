"""DELETE /users/me: close an account without leaving anything usable or orphaned behind.

Order matters for a request that fails half way (MongoDB down → 503): every step is idempotent
and the sign-ins are revoked last, so the client can simply retry the DELETE with the same token
and the remaining steps complete.

1. the user document is deleted, unless it is the last admin (409, nothing changed: checked and
   deleted under the admins lease, `UserRepository.delete`); from now on a session created for
   the user undoes itself (`SessionRepository.create` checks its owner after inserting);
2. every session of the user that has not ended is ended (after 1, so a session created while
   closing is still caught);
3. every sign-in of the user is revoked: refresh tokens, and every access token, the one of
   this request included, from the next call on (`lucid.auth.revocation`).
"""

from __future__ import annotations

from collections.abc import Callable

from lucid.identity import CallerIdentity
from lucid.sessions.repository import SessionRepository
from lucid.users.repository import UserRepository


def close_account(
    caller: CallerIdentity,
    *,
    users: UserRepository,
    sessions: SessionRepository,
    revoke_sign_ins: Callable[[str], object],
) -> None:
    """Close the caller's account (see the module docstring for the steps and their order)."""
    users.delete(caller.user_id)  # nothing to delete on a retry after it was deleted
    sessions.end_all_of(caller.user_id)
    revoke_sign_ins(caller.user_id)
