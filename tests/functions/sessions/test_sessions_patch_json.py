"""PATCH /sessions/{id} answers its JSON written without the model (`Session.json_of`, as GET
/sessions/{id} does): the status, headers in their order and bytes FastAPI answered with the
model, through the real handler; anything a dependency set on the injected response, and every
error, is FastAPI's as before.

FastAPI's own answer is the route's model path, which the route takes for a document the fast
JSON does not take: here `Session.json_of` is made to take none. MongoDB is mongomock (a fresh
in-memory database per test); Redis is the real test server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import Request, Response
from pymongo.database import Database

from lucid.sessions.repository import SessionRepository
from lucid.sessions.schemas import Session
from lucid.web.repositories import _repository, session_repository
from tests.utils.datastore import User
from tests.utils.events import http_event, lambda_context
from tests.utils.functions import load_module
from tests.utils.stored_json import by_the_model, same_answer


def _raw(user: User, method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
    """The handler's answer as Lambda returns it: status, headers in order, body as sent."""
    event = http_event(method, path, body=body, headers=headers, authorizer=user.context)
    answer: dict[str, Any] = load_module("sessions").handler(event, lambda_context("sessions"))
    return answer


def _created(user: User, body: dict[str, Any]) -> tuple[str, str]:
    created = _raw(user, "POST", "/sessions", body)
    assert created["statusCode"] == 201
    return json.loads(created["body"])["id"], created["headers"]["etag"]


@pytest.mark.parametrize(
    ("patch", "conditional"),
    [
        ({"name": 'ünï 🎉 "q" \\ \u2028'}, True),  # at once (one find_one_and_update)
        ({"metadata": {"a": {"b": [1, 2.5, None, "é", 1e16, -0.0]}, "n": 2**40}}, False),
        ({"status": "active"}, True),
        ({"status": "ended"}, False),
        ({"name": "first"}, True),  # changes nothing: the session as read
    ],
)
def test_a_patch_answers_what_fastapi_answered_with_the_model(
    alice: User,
    database: Database[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    patch: dict[str, Any],
    conditional: bool,
) -> None:
    # GIVEN a session
    session_id, tag = _created(alice, {"name": "first", "node_id": "n-1", "metadata": {"x": 1}})
    path = f"/sessions/{session_id}"
    # WHEN it is patched (the fast JSON), with If-Match or without
    fast = _raw(alice, "PATCH", path, patch, **({"If-Match": tag} if conditional else {}))
    # AND the session as it now is, answered by the route through the model (a PATCH that
    # changes nothing)
    by_the_model(monkeypatch, Session)
    model = _raw(alice, "PATCH", path, {})
    # THEN the PATCH answered the same status, body and headers, in the same order
    assert fast["statusCode"] == 200
    same_answer(fast, model)
    assert list(fast["headers"])[:3] == ["content-length", "content-type", "etag"]
    # AND that is the session as stored, with its version as the ETag
    stored = database["sessions"].find_one({"_id": session_id})
    assert stored is not None
    assert fast["body"] == Session.from_document(stored).model_dump_json()
    assert fast["headers"]["etag"] == f'"{stored["version"]}"'


def test_a_stored_value_the_fast_json_does_not_take_is_answered_by_the_model(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a stored session whose version is the string "7" (the model converts it)
    session_id, _ = _created(alice, {"name": "odd"})
    database["sessions"].update_one({"_id": session_id}, {"$set": {"version": "7"}})
    stored = database["sessions"].find_one({"_id": session_id})
    assert stored is not None
    assert Session.json_of(stored) is None
    # WHEN it is answered by a PATCH that changes nothing
    patched = _raw(alice, "PATCH", f"/sessions/{session_id}", {"name": "odd"})
    # THEN the answer is the model's, as before: the version converted, as the ETag
    assert patched["statusCode"] == 200
    assert patched["body"] == Session.from_document(stored).model_dump_json()
    assert json.loads(patched["body"])["version"] == 7
    assert patched["headers"]["etag"] == '"7"'
    assert list(patched["headers"])[:3] == ["content-length", "content-type", "etag"]


@pytest.mark.parametrize(
    ("patch", "if_match", "status"),
    [
        ({"name": "x"}, '"9"', 412),  # a stale version
        ({"name": "x"}, "W/7", 400),  # a malformed If-Match
        ({"status": "pending"}, None, 409),  # a move the lifecycle forbids
        ({"version": 3}, None, 422),  # a field no client may send
    ],
)
def test_an_error_is_answered_as_before(
    alice: User,
    monkeypatch: pytest.MonkeyPatch,
    patch: dict[str, Any],
    if_match: str | None,
    status: int,
) -> None:
    # GIVEN an active session
    session_id, tag = _created(alice, {"name": "first"})
    path = f"/sessions/{session_id}"
    assert (
        _raw(alice, "PATCH", path, {"status": "active"}, **{"If-Match": tag})["statusCode"] == 200
    )
    headers = {} if if_match is None else {"If-Match": if_match}
    # WHEN a PATCH is refused, by the route as it is and through the model
    fast = _raw(alice, "PATCH", path, patch, **headers)
    by_the_model(monkeypatch, Session)
    model = _raw(alice, "PATCH", path, patch, **headers)
    # THEN both answers are the same problem
    assert fast["statusCode"] == status
    same_answer(fast, model)


async def _noting_etag(request: Request, response: Response) -> SessionRepository:
    response.headers["ETag"] = '"from a dependency"'
    return _repository(request.scope)


async def _noting_not_modified(request: Request, response: Response) -> SessionRepository:
    response.status_code = 304
    return _repository(request.scope)


async def _noting_a_header(request: Request, response: Response) -> SessionRepository:
    response.headers["x-noted"] = "yes"
    response.status_code = 203
    return _repository(request.scope)


# Declared at module level: FastAPI resolves a dependency's Request and Response annotations
# from its module's globals.
_NOTING = {"an etag": _noting_etag, "304": _noting_not_modified, "a header": _noting_a_header}


@pytest.mark.parametrize("noting", sorted(_NOTING))
@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_what_a_dependency_sets_on_the_response_is_answered_as_fastapi_does(
    alice: User, monkeypatch: pytest.MonkeyPatch, noting: str, method: str
) -> None:
    # GIVEN a sessions app whose repository dependency also sets an ETag, a status or a header
    # on the injected response (as a dependency may; FastAPI drops that response when an
    # endpoint returns a Response of its own)
    app = load_module("sessions").app
    session_id, _ = _created(alice, {"name": "noted"})
    path = f"/sessions/{session_id}"
    body = {"name": "noted"} if method == "PATCH" else None
    app.dependency_overrides[session_repository] = _NOTING[noting]
    try:
        # WHEN the session is read or patched, by the route as it is and through the model
        fast = _raw(alice, method, path, body)
        by_the_model(monkeypatch, Session)
        model = _raw(alice, method, path, body)
    finally:
        app.dependency_overrides.clear()
    # THEN both answers are FastAPI's: one ETag, the route's (FastAPI's MutableHeaders replaced
    # the dependency's where it stood), no body with a 304, a header and status kept
    same_answer(fast, model)
    assert fast["headers"]["etag"] == '"1"'
    if noting == "304":
        assert fast["statusCode"] == 304
        assert fast["body"] == ""
    if noting == "a header":
        assert fast["statusCode"] == 203
        assert fast["headers"]["x-noted"] == "yes"
