"""GET /sessions/{id} answers its JSON written without the model (`Session.json_of`): the same
bytes and headers as the model answered, through the real handler.

MongoDB is mongomock (a fresh in-memory database per test); Redis is the real test server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymongo.database import Database

from tests.utils.datastore import User
from tests.utils.events import http_event, lambda_context
from tests.utils.functions import load_module
from tests.utils.stored_json import PER_REQUEST, by_the_model


def _raw(user: User, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """The handler's answer as Lambda returns it: status, headers in order, body as sent."""
    event = http_event(method, path, body=body, authorizer=user.context)
    answer: dict[str, Any] = load_module("sessions").handler(event, lambda_context("sessions"))
    return answer


def test_get_answers_the_bytes_and_headers_the_model_answered(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
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
    # WHEN it is read (GET: the fast JSON), then read through the model (dumped by FastAPI, as
    # GET answered before; the route's path for a document the fast JSON does not take)
    read = _raw(alice, "GET", f"/sessions/{session_id}")
    from lucid.sessions.schemas import Session

    by_the_model(monkeypatch, Session)
    model = _raw(alice, "GET", f"/sessions/{session_id}")
    monkeypatch.undo()
    # THEN the body is the same text, the headers the same in the same order
    assert read["statusCode"] == model["statusCode"] == 200
    assert read["body"] == model["body"]
    assert json.loads(read["body"])["started_at"] is not None
    assert list(read["headers"]) == list(model["headers"])
    same = {name: value for name, value in model["headers"].items() if name not in PER_REQUEST}
    assert {name: read["headers"][name] for name in same} == same
    assert same["etag"] == '"2"'
    assert same["content-type"] == "application/json"
    # ...and it is the document as stored, the JSON the model dumps of it
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
