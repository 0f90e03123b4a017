"""POST/GET /sessions and GET/PATCH/DELETE /sessions/{id}.

The caller comes only from the authorizer context; the repository scopes every read and write to
it, so another user's session answers exactly like a missing one (404).
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import Annotated

from fastapi import Header, Query, Request, Response

from lucid.errors import NotFoundError
from lucid.sessions.lifecycle import SessionStatus, etag
from lucid.sessions.preconditions import MAX_IF_MATCH_LENGTH, parse_if_match
from lucid.sessions.schemas import Session, SessionCreate, SessionPage, SessionPatch
from lucid.store.documents import Document
from lucid.store.pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, SortOrder
from lucid.web.app import FunctionRouter
from lucid.web.deps import Caller, SettingsDep
from lucid.web.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    StoredResponse,
    fingerprint,
    idempotency_store,
)
from lucid.web.openapi import Responses, header, problems
from lucid.web.repositories import SessionsDep

# Every route needs a signed-in caller (401 without one).
router = FunctionRouter(responses=problems(401))

ETAG = header('the session\'s version as a strong entity tag (`"3"`): send it back in If-Match')
TAGGED: Responses = {200: {"headers": {"ETag": {**ETAG, "required": True}}}}

OwnerId = Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH)]
IdempotencyKey = Annotated[str | None, Header(alias=HEADER, max_length=255)]
IfMatchHeader = Annotated[str | None, Header(alias="If-Match", max_length=MAX_IF_MATCH_LENGTH)]


def _tagged(document: Document, response: Response) -> Session:
    response.headers["ETag"] = etag(document)
    return Session.from_document(document)


def _tagged_json(document: Document, response: Response) -> Session | Response:
    """What `_tagged` answers, as the response FastAPI would make of it: the model's JSON
    (`Session.json_of`), then the ETag. FastAPI sends a Response an endpoint returns as it is
    (fastapi/routing.py 767-770, FastAPI 0.165), where it would validate and dump the model
    into `Response(content=..., media_type="application/json")` (content-length, then
    content-type: starlette/responses.py init_headers) and then append the headers set on the
    injected `response` (797-807), the ETag lower-cased as MutableHeaders sets a header: the
    same headers in the same order (tests/functions/sessions/test_sessions_get_json.py,
    test_sessions_patch_json.py). A document the fast JSON does not take is answered by
    `_tagged`; ~50 K instructions less per GET /sessions/{id} than `_tagged` (valgrind,
    CPython 3.11).

    So is one whose injected `response` a dependency changed (none does today): FastAPI drops
    that response when an endpoint returns a Response of its own (routing.py 767-770), and
    what it does with a status or headers set there is its own: the status in
    `_build_response_args`, no body for a status that allows none (804), the headers appended
    after the model's (807), among them an ETag that `_tagged` replaces where it stands
    (MutableHeaders.__setitem__) instead of adding a second."""
    if response.status_code is not None or response.raw_headers:
        return _tagged(document, response)
    body = Session.json_of(document)
    if body is None:
        return _tagged(document, response)
    answer = Response(body, media_type="application/json")
    answer.raw_headers.append((b"etag", etag(document).encode("latin-1")))
    return answer


@router.post(
    "/sessions",
    status_code=201,
    responses={
        201: {
            "headers": {
                "Location": header("the new session's path", required=True),
                "ETag": {**ETAG, "required": True},
                REPLAYED_HEADER: header(
                    "`true` when this is the stored answer to an earlier request with the same "
                    f"{HEADER}"
                ),
            }
        },
        **problems(
            409,
            descriptions={409: f"A request with this {HEADER} is still being processed"},
            retry_after={409: True},
        ),
    },
)
async def create_session(
    body: SessionCreate,
    caller: Caller,
    sessions: SessionsDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Session:
    """Create a pending session owned by the caller; 201 with Location and ETag."""
    # The session this request creates is answered as it was built; only a replay is read back
    # from its stored JSON (dumping and validating it again cost ~40 K instructions per POST).
    created: list[Session] = []

    def create() -> StoredResponse:
        document = sessions.create(caller.user_id, body, idempotency_key)
        headers = {"Location": f"/sessions/{document['_id']}", "ETag": etag(document)}
        created.append(Session.from_document(document))
        stored = {} if idempotency_key is None else created[0].model_dump(mode="json")
        return StoredResponse(201, stored, headers)

    if idempotency_key is None and not response.raw_headers:
        # Nothing to store for a replay: its headers go straight onto the response FastAPI made
        # for the route, which has none (solve_dependencies deletes its content-length), as
        # MutableHeaders.update would set them (lowercase latin-1 names and values, in this
        # order: starlette datastructures.py MutableHeaders.__setitem__), ~15 K instructions less.
        document = sessions.create(caller.user_id, body, None)
        response.status_code = 201
        response.raw_headers += (
            (b"location", f"/sessions/{document['_id']}".encode("latin-1")),
            (b"etag", etag(document).encode("latin-1")),
        )
        return Session.from_document(document)
    if idempotency_key is None:
        stored, replayed = create(), False
    else:
        # The idempotency store is built only now, for a request that sends a key (~10 K
        # instructions a POST without one paid for it as a dependency).
        stored, replayed = idempotency_store(request, settings).run(
            f"sessions:{caller.user_id}",
            idempotency_key,
            fingerprint(body.model_dump(mode="json")),
            create,
        )
    response.status_code = stored.status
    response.headers.update(stored.headers)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return created[0] if created and not replayed else Session.model_validate(stored.body)


# Declared second, after POST /sessions (a target of issue 11 too): the app tries its routes in
# the order they were declared (starlette Router), and each whose path does not match costs
# ~12.5 K instructions (valgrind, CPython 3.11). The OpenAPI document is the same: its paths and
# each path's operations come in the order of their first route. The model is named here, as
# the route answers either it or its JSON (`_tagged_json`).
@router.get("/sessions/{session_id}", response_model=Session, responses={**TAGGED, **problems(404)})
async def get_session(
    session_id: str, caller: Caller, sessions: SessionsDep, response: Response
) -> Session | Response:
    """One session of the caller (any session for an admin); 404 otherwise."""
    return _tagged_json(sessions.get(caller, session_id), response)


@router.get("/sessions", responses=problems(404))
async def list_sessions(
    caller: Caller,
    sessions: SessionsDep,
    owner_id: OwnerId = None,
    status: SessionStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    sort: SortOrder = "-created_at",
) -> SessionPage:
    """The caller's sessions (an admin may name another `owner_id`), newest first by default."""
    owner = owner_id or caller.user_id
    if owner != caller.user_id and not caller.is_admin:
        raise NotFoundError("no such owner")
    page = sessions.list(owner, status=status, limit=limit, cursor=cursor, sort=sort)
    return SessionPage(
        items=[Session.from_document(document) for document in page.items],
        next_cursor=page.next_cursor,
    )


@router.patch(
    "/sessions/{session_id}",
    response_model=Session,
    responses={
        **TAGGED,
        **problems(
            400,
            404,
            409,
            412,
            descriptions={
                400: "If-Match is malformed",
                409: "The lifecycle forbids this change (`current_status` is the session's, "
                "`allowed` lists the statuses it may move to), or others kept changing the session",
            },
        ),
    },
)
async def update_session(
    session_id: str,
    body: SessionPatch,
    caller: Caller,
    sessions: SessionsDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Session | Response:
    """Rename, replace metadata or move the status; If-Match makes it conditional (412)."""
    updated = sessions.update(caller, session_id, body, parse_if_match(if_match))
    return _tagged_json(updated, response)


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    response_class=Response,
    responses=problems(400, 404, 412, descriptions={400: "If-Match is malformed"}),
)
async def end_session(
    session_id: str, caller: Caller, sessions: SessionsDep, if_match: IfMatchHeader = None
) -> None:
    """End the session (status ended); ending it again is still 204. If-Match makes it
    conditional (412 when the session changed since, unless it has already ended)."""
    sessions.end(caller, session_id, parse_if_match(if_match))
