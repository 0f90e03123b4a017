"""The `sessions` collection: every read scoped to what the caller may see, every write atomic.

Object-level authorization (OWASP API1) lives here, not in routes: a non-admin's filter always
includes `owner_id`, so someone else's session is indistinguishable from a missing one (404).
Each write is one `insert_one` / `find_one_and_update`. A PATCH with If-Match naming versions
is, on its happy path, that one `find_one_and_update` and no read: filtered on the versions, on a
status the lifecycle allows its move from and on a field it really changes (`_at_once`). Only
when that matches nothing, for what one filter cannot decide exactly (metadata), and without
If-Match or with `*` (whose retries after a lost race stay as they were), is the session read
first, and then written only if the version read is still current. Either way the check and
the write are one operation, so concurrent writers with the same ETag get exactly one success.
A new session whose owner's account is gone once it is inserted (closed meanwhile,
`lucid.users.closure`) is removed again and refused, so a closed account owns nothing new.
MongoDB outages become `ServiceUnavailableError`.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from lucid.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from lucid.identity import CallerIdentity
from lucid.sessions.lifecycle import TRANSITIONS, SessionStatus, allowed_transitions, etag
from lucid.store import fast_reads, fast_writes
from lucid.store.documents import Document, database_errors, is_valid_id, new_id, utcnow
from lucid.store.pagination import Page, SortOrder, fetch_page

if TYPE_CHECKING:
    # Types only: the request models and If-Match parsing belong to the sessions routes; the
    # users function, which ends sessions when it closes an account, builds neither
    # (lucid.sessions.lifecycle).
    from lucid.sessions.preconditions import IfMatch
    from lucid.sessions.schemas import SessionCreate, SessionPatch

COLLECTION = "sessions"
USERS = "users"  # lucid.users.repository.COLLECTION: read to see that a session's owner exists
# Without If-Match a PATCH re-reads and retries when another writer got in between.
UNCONDITIONAL_ATTEMPTS = 3


def _with_article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _not_found() -> NotFoundError:
    return NotFoundError("no such session")


def keyed_id(owner_id: str, idempotency_key: str) -> str:
    """The id of the session `owner_id` creates with `idempotency_key`: the same for every retry,
    another for any other owner or key (128 bits of SHA-256, in the shape of `new_id`)."""
    digest = hashlib.sha256(f"session\n{owner_id}\n{idempotency_key}".encode()).hexdigest()
    return digest[:32]


class SessionRepository:
    """Sessions as one caller may see and change them."""

    def __init__(self, database: Database[Document]) -> None:
        self._sessions = database[COLLECTION]
        self._users = database[USERS]

    def create(
        self, owner_id: str, data: SessionCreate, idempotency_key: str | None = None
    ) -> Document:
        """A new pending session owned by `owner_id`; 401 when that account no longer exists.

        With an `idempotency_key` the session's id is derived from it and the owner
        (`keyed_id`), so one key creates at most one session even when MongoDB applied the
        insert but its reply was lost (a 503 the client retries, after the Redis claim of
        `lucid.web.idempotency` was released): the retry's insert finds the id taken and
        answers with that session, as the first request would have. pymongo's retryable writes
        do not cover this: they retry once, inside the one call, and not on a standalone server.
        """
        now = utcnow()
        session_id = new_id() if idempotency_key is None else keyed_id(owner_id, idempotency_key)
        document: Document = {
            "_id": session_id,
            "owner_id": owner_id,
            "name": data.name,
            "node_id": data.node_id,
            "status": SessionStatus.PENDING.value,
            "metadata": data.metadata,
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "ended_at": None,
            "version": 1,
        }
        inserted = True
        try:
            with database_errors("sessions", self._sessions):
                fast_writes.insert_one(self._sessions, document)
        except DuplicateKeyError:
            document, inserted = self._created_earlier(owner_id, session_id, data), False
        # After the insert, not before: a closure that deletes the owner in between still sees
        # this session (it ends them after the delete), and one that deleted it earlier is seen
        # here. If the check cannot be made, this request's insert is undone before the 503: the
        # client was told the create failed and retries it, so the session must not stay behind.
        # A session an earlier request created (same key) is never undone here: that request may
        # have been answered 201 and the session used since.
        try:
            with database_errors("sessions", self._sessions):
                owner = fast_reads.find_one(self._users, {"_id": owner_id}, {"_id": 1})
        except ServiceUnavailableError:
            if inserted:
                with suppress(PyMongoError):  # still down: it stays, as after any 503 write
                    self._sessions.delete_one({"_id": document["_id"]})
            raise
        if owner is None:
            with database_errors("sessions", self._sessions):
                self._sessions.delete_one({"_id": document["_id"]})
            raise AuthenticationError("the account was closed")
        return document

    def _created_earlier(self, owner_id: str, session_id: str, data: SessionCreate) -> Document:
        """The session an earlier request with the same idempotency key created; 422 when that
        request asked for another session (as a replay with another body is)."""
        with database_errors("sessions", self._sessions):
            earlier = self._sessions.find_one({"_id": session_id, "owner_id": owner_id})
        asked = (data.name, data.node_id, data.metadata)
        if earlier is None or (earlier["name"], earlier["node_id"], earlier["metadata"]) != asked:
            raise ValidationFailedError(
                "this Idempotency-Key was already used with a different request body",
                extensions={
                    "errors": [
                        {"loc": ["header", "Idempotency-Key"], "msg": "reused", "type": "key"}
                    ]
                },
            )
        return earlier

    def get(self, caller: CallerIdentity, session_id: str) -> Document:
        """The session `session_id` if the caller owns it or is an admin; 404 otherwise."""
        # GET /sessions/{id} and the read of a PATCH decided as read (`update_as_read`): by id
        # (and owner), through `lucid.store.fast_reads`.
        with database_errors("sessions", self._sessions):
            document = fast_reads.find_one(self._sessions, self._visible(caller, session_id))
        if document is None:
            raise _not_found()
        return document

    def list(
        self,
        owner_id: str,
        *,
        status: SessionStatus | None,
        limit: int,
        cursor: str | None,
        sort: SortOrder,
    ) -> Page:
        """A page of `owner_id`'s sessions (the route decides whose the caller may list)."""
        filters: dict[str, Any] = {"owner_id": owner_id}
        if status is not None:
            filters["status"] = status.value
        with database_errors("sessions", self._sessions):
            return fetch_page(self._sessions, filters, limit=limit, cursor=cursor, sort=sort)

    def update(
        self, caller: CallerIdentity, session_id: str, patch: SessionPatch, if_match: IfMatch | None
    ) -> Document:
        """The session after applying `patch`; 404, 409 (transition) or 412 (stale If-Match).

        With If-Match naming versions, a change `_at_once` can decide in one filter is one
        conditional `find_one_and_update` (one round trip): it applies only to a session the
        caller sees, at one of those versions, that the change really changes, as
        `update_as_read` would have written it. When it matches nothing, the answer (404, 409,
        412, or 200 with the session unchanged, or written after all if another writer made it
        writable meanwhile) is `update_as_read`'s, exactly as before. Without If-Match, or with
        `*`, the PATCH is `update_as_read`'s from the start: at once it could never lose a race,
        and the 409 after three lost races would become a 200.
        """
        visible = self._visible(caller, session_id)  # 404 for a malformed id: no round trip
        if if_match is not None and not if_match.any_version and if_match.versions:
            planned = _at_once(patch.changes())
            if planned is not None:
                condition, changes = planned
                scope = {**visible, "version": {"$in": sorted(if_match.versions)}, **condition}
                with database_errors("sessions", self._sessions):
                    updated = self._sessions.find_one_and_update(
                        scope,
                        {"$set": changes, "$inc": {"version": 1}},
                        return_document=ReturnDocument.AFTER,
                    )
                if updated is not None:
                    return updated
        return self.update_as_read(caller, session_id, patch, if_match)

    def update_as_read(
        self, caller: CallerIdentity, session_id: str, patch: SessionPatch, if_match: IfMatch | None
    ) -> Document:
        """`update` decided on the session as read: read it, check If-Match, compute the
        changes and the lifecycle move, then write them only if the version read is still
        current (without If-Match, or with `*`, read and try again when it is not). Every PATCH
        `update` cannot decide at once, and every one whose write at once matched nothing."""
        for _ in range(UNCONDITIONAL_ATTEMPTS):
            current = self.get(caller, session_id)
            if if_match is not None and not if_match.allows(current["version"]):
                raise _stale(current)
            changes = _changes(current, patch)
            if not changes:
                return current
            changes["updated_at"] = utcnow()
            with database_errors("sessions", self._sessions):
                updated = self._sessions.find_one_and_update(
                    {**self._visible(caller, session_id), "version": current["version"]},
                    {"$set": changes, "$inc": {"version": 1}},
                    return_document=ReturnDocument.AFTER,
                )
            if updated is not None:
                return updated
            if if_match is not None and not if_match.any_version:
                # Another writer won the race for this version: the caller's ETag is stale now.
                # `*` matches any current version (RFC 9110 section 13.1.1), the newer one too:
                # it goes round again like an unconditional PATCH, as DELETE with `*` applies.
                raise _stale(self.get(caller, session_id))
        raise ConflictError("the session is being changed by others; retry")

    def end(self, caller: CallerIdentity, session_id: str, if_match: IfMatch | None = None) -> None:
        """End the session (idempotent: ending an ended session changes nothing); with
        `if_match`, only the versions it allows (412 otherwise, one atomic update as PATCH)."""
        now = utcnow()
        scope = {**self._visible(caller, session_id), "status": {"$ne": SessionStatus.ENDED.value}}
        if if_match is not None and not if_match.any_version:
            scope["version"] = {"$in": sorted(if_match.versions)}
        with database_errors("sessions", self._sessions):
            ended = self._sessions.find_one_and_update(
                scope, {"$set": _ended_fields(now), "$inc": {"version": 1}}
            )
        if ended is None:
            current = self.get(caller, session_id)  # 404 unless it exists
            # Already ended: the change asked for is in place, 204 whatever the tag (RFC 9110
            # section 13.1.1 lets a server answer 2xx then). Otherwise the tag did not match.
            if current["status"] != SessionStatus.ENDED.value:
                raise _stale(current)

    def end_all_of(self, owner_id: str) -> None:
        """End every session of `owner_id` that has not ended."""
        now = utcnow()
        with database_errors("sessions", self._sessions):
            self._sessions.update_many(
                {"owner_id": owner_id, "status": {"$ne": SessionStatus.ENDED.value}},
                {"$set": _ended_fields(now), "$inc": {"version": 1}},
            )

    @staticmethod
    def _visible(caller: CallerIdentity, session_id: str) -> dict[str, Any]:
        if not is_valid_id(session_id):
            raise _not_found()
        scope: dict[str, Any] = {"_id": session_id}
        if not caller.is_admin:
            scope["owner_id"] = caller.user_id
        return scope


def _stale(current: Document) -> PreconditionFailedError:
    """412 for an If-Match that no longer matches `current`, naming its tag to read again."""
    return PreconditionFailedError(
        "the session has changed since you read it", extensions={"current_etag": etag(current)}
    )


def _ended_fields(now: Any) -> dict[str, Any]:
    return {"status": SessionStatus.ENDED.value, "ended_at": now, "updated_at": now}


def _changes(current: Document, patch: SessionPatch) -> dict[str, Any]:
    """The fields `patch` really changes on `current`; 409 for a move the lifecycle forbids."""
    requested = patch.changes()
    status = SessionStatus(current["status"])
    if status is SessionStatus.ENDED and requested:
        raise ConflictError(
            "an ended session cannot be changed",
            extensions={"current_status": status.value, "allowed": []},
        )
    changes = {key: value for key, value in requested.items() if current.get(key) != value}
    target = changes.pop("status", None)
    if target is None:
        return changes
    target = SessionStatus(target)
    if target not in TRANSITIONS[status]:
        raise ConflictError(
            f"{_with_article(status.value)} session cannot become {target.value}",
            extensions={"current_status": status.value, "allowed": allowed_transitions(status)},
        )
    changes.update(_moved(target, utcnow()))
    return changes


def _moved(target: SessionStatus, now: Any) -> dict[str, Any]:
    """The fields a move to `target` sets: `started_at` on becoming active, `ended_at` (and
    `updated_at`) on ending."""
    if target is SessionStatus.ACTIVE:
        return {"status": target.value, "started_at": now}
    return _ended_fields(now)


# The statuses a session can still be changed in (an ended one cannot), and for each status
# the statuses a session may move to it from.
_CHANGEABLE = sorted(status.value for status, moves in TRANSITIONS.items() if moves)
_SOURCES = {
    target: sorted(status.value for status, moves in TRANSITIONS.items() if target in moves)
    for target in SessionStatus
}


def _at_once(requested: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The condition (beyond scope and version) and the `$set` of the one write that does what
    `update_as_read` does to every session matching it, and nothing to any other: those it
    leaves alone, or refuses, match none. None where no one filter says it exactly:

    - nothing requested (no write either way);
    - `metadata`: Python's `!=`, which `_changes` decides by, finds a dict equal to another in
      any key order and `True` equal to `1`, where MongoDB compares embedded documents' fields
      "in the order that they appear" and a boolean is never a number (the manual's
      Comparison/Sort Order, https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/);
      and setting an equal value anyway would store the client's key order and number types
      (`1.0` for `1`) where `update_as_read` keeps the stored ones;
    - a `status` no session moves to (`pending`), where only a session already in it could
      change, by its other fields and without a move.

    A `name` alone: a session not ended whose name differs (`$ne` on strings: "By default,
    MongoDB uses the simple binary comparison to compare strings" (same page), the UTF-8 bytes,
    as `!=` compares code points; no collection or operation of ours names a collation). A
    `status`, with or without a `name`: a session in a status the lifecycle allows the move
    from, so it really moves (`started_at` or `ended_at` set, as `_changes` sets them); the
    `name` is set whether or not it differs, which stores the same string when it does not. A
    session already in the requested status does not match: `update_as_read` changes only its
    other fields.
    """
    if not requested or "metadata" in requested:
        return None
    now = utcnow()
    name = requested.get("name")
    target = requested.get("status")
    if target is None:
        return {"status": {"$in": _CHANGEABLE}, "name": {"$ne": name}}, {
            "name": name,
            "updated_at": now,
        }
    target = SessionStatus(target)
    if not _SOURCES[target]:
        return None
    changes: dict[str, Any] = {} if name is None else {"name": name}
    changes.update(_moved(target, now))
    changes["updated_at"] = now
    return {"status": {"$in": _SOURCES[target]}}, changes
