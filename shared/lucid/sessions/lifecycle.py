"""A session's status, the moves between statuses, and its version as an entity tag.

Kept apart from the request and response models (`lucid.sessions.schemas`, pydantic): the
repository needs only these, and so does the users function, which ends a closed account's
sessions (`lucid.users.closure`) but serves no session route. Building the models it would never
use was ~3 ms of its cold start's CPU (`make bench coldstart`; tests/infra/test_built_artifact.py
checks that the built users function does not import them).
"""

from __future__ import annotations

from enum import StrEnum

from lucid.store.documents import Document


class SessionStatus(StrEnum):
    """Where a session is in its life."""

    PENDING = "pending"
    ACTIVE = "active"
    ENDED = "ended"


# pending → active → ended, or pending → ended; an ended session is final.
TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.PENDING: frozenset({SessionStatus.ACTIVE, SessionStatus.ENDED}),
    SessionStatus.ACTIVE: frozenset({SessionStatus.ENDED}),
    SessionStatus.ENDED: frozenset(),
}


def allowed_transitions(status: SessionStatus) -> list[str]:
    """The statuses a session in `status` may move to, sorted."""
    return sorted(TRANSITIONS[status])


def etag(document: Document) -> str:
    """The strong entity tag of a stored session: its version, quoted."""
    return f'"{document["version"]}"'
