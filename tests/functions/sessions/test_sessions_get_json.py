"""GET /sessions/{id} answers its JSON written without the model (`Session.json_of`): the same
bytes and headers as the model answered, through the real handler.

MongoDB is mongomock (a fresh in-memory database per test); Redis is the real test server.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response
from pymongo.database import Database

from lucid.sessions.repository import SessionRepository
from lucid.web.repositories import _repository, session_repository
from tests.utils.datastore import User
from tests.utils.events import http_event, lambda_context
from tests.utils.functions import load_module

# Headers whose values are the request's own (its id) or the limiter's count.
_PER_REQUEST = {"x-request-id", "x-ratelimit-remaining", "ratelimit", "x-ratelimit-reset"}


def _raw(user: User, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """The handler's answer as Lambda returns it: status, headers in order, body as sent."""
    event = http_event(method, path, body=body, authorizer=user.context)
    answer: dict[str, Any] = load_module("sessions").handler(event, lambda_context("sessions"))
    return answer


def test_get_answers_the_bytes_and_headers_the_model_answered(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a started session with unicode and nested metadata
    created = _raw(
        alice,
        "POST",
        "/sessions",
        {"name": 'ünï 🎉 "q"', "node_id": "node-7", "metadata": {"a": {"b": [1, 2.5, None, "é"]}}},
    )
    session_id = json.loads(created["body"])["id"]
    assert (
        _raw(alice, "PATCH", f"/sessions/{session_id}", {"status": "active"})["statusCode"] == 200
    )
    # WHEN it is read (GET: the fast JSON) and answered by a PATCH that changes nothing (the
    # model, dumped by FastAPI, as GET answered before)
    read = _raw(alice, "GET", f"/sessions/{session_id}")
    model = _raw(alice, "PATCH", f"/sessions/{session_id}", {"name": 'ünï 🎉 "q"'})
    # THEN the body is the same text, the headers the same in the same order
    assert read["statusCode"] == model["statusCode"] == 200
    assert read["body"] == model["body"]
    assert json.loads(read["body"])["started_at"] is not None
    assert list(read["headers"]) == list(model["headers"])
    same = {name: value for name, value in model["headers"].items() if name not in _PER_REQUEST}
    assert {name: read["headers"][name] for name in same} == same
    assert same["etag"] == '"2"'
    assert same["content-type"] == "application/json"
    # ...and it is the document as stored, the JSON the model dumps of it
    from lucid.sessions.schemas import Session

    stored = database["sessions"].find_one({"_id": session_id})
    assert stored is not None
    assert read["body"].encode() == Session.json_of(stored)
    assert read["body"] == Session.from_document(stored).model_dump_json()


def test_a_stored_value_the_fast_json_does_not_take_is_answered_by_the_model(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a stored session whose version is not an int (the model converts it)
    created = _raw(alice, "POST", "/sessions", {"name": "odd"})
    session_id = json.loads(created["body"])["id"]
    database["sessions"].update_one({"_id": session_id}, {"$set": {"version": "7"}})
    stored = database["sessions"].find_one({"_id": session_id})
    assert stored is not None
    from lucid.sessions.schemas import Session

    assert Session.json_of(stored) is None
    # WHEN it is read THEN the answer is the model's, as before: the version converted
    read = _raw(alice, "GET", f"/sessions/{session_id}")
    assert read["statusCode"] == 200
    assert read["body"] == Session.from_document(stored).model_dump_json()
    assert json.loads(read["body"])["version"] == 7
    assert read["headers"]["etag"] == '"7"'
    assert list(read["headers"])[:3] == ["content-length", "content-type", "etag"]


def test_what_a_dependency_sets_on_the_response_is_kept_by_the_fast_json(alice: User) -> None:
    # GIVEN a sessions app whose repository dependency also sets a header and a status on the
    # injected response (as a dependency may; FastAPI drops that response when an endpoint
    # returns a Response of its own)
    app = load_module("sessions").app

    async def noting(request: Request, response: Response) -> SessionRepository:
        response.headers["x-noted"] = "yes"
        response.status_code = 203
        return _repository(request.scope)

    created = _raw(alice, "POST", "/sessions", {"name": "noted"})
    session_id = json.loads(created["body"])["id"]
    app.dependency_overrides[session_repository] = noting
    try:
        # WHEN a session is read (the fast JSON) and answered by the model (a PATCH that changes
        # nothing)
        read = _raw(alice, "GET", f"/sessions/{session_id}")
        model = _raw(alice, "PATCH", f"/sessions/{session_id}", {"name": "noted"})
    finally:
        app.dependency_overrides.clear()
    # THEN both carry the dependency's header before the ETag, and its status
    assert read["statusCode"] == model["statusCode"] == 203
    assert read["headers"]["x-noted"] == model["headers"]["x-noted"] == "yes"
    assert list(read["headers"]) == list(model["headers"])
    assert read["body"] == model["body"]
