"""POST/GET /sessions and GET/PATCH/DELETE /sessions/{id}.

The caller comes only from the authorizer context; the repository scopes every read and write to
it, so another user's session answers exactly like a missing one (404).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from lucid.errors import NotFoundError
from lucid.sessions.preconditions import MAX_IF_MATCH_LENGTH, parse_if_match
from lucid.sessions.schemas import SessionCreate, SessionPatch, SessionStatus, etag, public_session
from lucid.store.pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, SortOrder
from lucid.web.deps import Caller, SessionsDep
from lucid.web.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    IdempotencyDep,
    StoredResponse,
    fingerprint,
)

router = APIRouter()

OwnerId = Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH)]
IdempotencyKey = Annotated[str | None, Header(alias=HEADER, max_length=255)]
IfMatchHeader = Annotated[str | None, Header(alias="If-Match", max_length=MAX_IF_MATCH_LENGTH)]


def _session_response(document: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(public_session(document), status_code, headers={"ETag": etag(document)})


@router.post("/sessions", status_code=201)
async def create_session(
    body: SessionCreate,
    caller: Caller,
    sessions: SessionsDep,
    idempotency: IdempotencyDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a pending session owned by the caller; 201 with Location and ETag."""

    def create() -> StoredResponse:
        document = sessions.create(caller.user_id, body)
        headers = {"Location": f"/sessions/{document['_id']}", "ETag": etag(document)}
        return StoredResponse(201, public_session(document), headers)

    if idempotency_key is None:
        stored, replayed = create(), False
    else:
        stored, replayed = idempotency.run(
            f"sessions:{caller.user_id}",
            idempotency_key,
            fingerprint(body.model_dump(mode="json")),
            create,
        )
    headers = {**stored.headers, **({REPLAYED_HEADER: "true"} if replayed else {})}
    return JSONResponse(stored.body, stored.status, headers=headers)


@router.get("/sessions")
async def list_sessions(
    caller: Caller,
    sessions: SessionsDep,
    owner_id: OwnerId = None,
    status: SessionStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    sort: SortOrder = "-created_at",
) -> dict[str, Any]:
    """The caller's sessions (an admin may name another `owner_id`), newest first by default."""
    owner = owner_id or caller.user_id
    if owner != caller.user_id and not caller.is_admin:
        raise NotFoundError("no such owner")
    page = sessions.list(owner, status=status, limit=limit, cursor=cursor, sort=sort)
    return {
        "items": [public_session(document) for document in page.items],
        "next_cursor": page.next_cursor,
    }


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, caller: Caller, sessions: SessionsDep) -> JSONResponse:
    """One session of the caller (any session for an admin); 404 otherwise."""
    return _session_response(sessions.get(caller, session_id))


@router.patch("/sessions/{session_id}")
async def update_session(
    session_id: str,
    body: SessionPatch,
    caller: Caller,
    sessions: SessionsDep,
    if_match: IfMatchHeader = None,
) -> JSONResponse:
    """Rename, replace metadata or move the status; If-Match makes it conditional (412)."""
    return _session_response(sessions.update(caller, session_id, body, parse_if_match(if_match)))


@router.delete("/sessions/{session_id}", status_code=204)
async def end_session(session_id: str, caller: Caller, sessions: SessionsDep) -> Response:
    """End the session (status ended); ending it again is still 204."""
    sessions.end(caller, session_id)
    return Response(status_code=204)
