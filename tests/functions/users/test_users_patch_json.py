"""PATCH /users/me answers its JSON written without the model (`User.json_of`, as GET /users/me
does): the status, headers in their order and bytes FastAPI answered with the model, through the
real handler; anything a dependency set on the injected response (on GET /users/me too), and
every error, is FastAPI's as before.

FastAPI's own answer is the route's model path, which the route takes for a document the fast
JSON does not take: here `User.json_of` is made to take none. MongoDB is mongomock (a fresh
in-memory database per test); Redis is the real test server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import Request, Response
from pymongo.database import Database

from lucid.users.repository import UserRepository
from lucid.users.schemas import User as UserModel
from lucid.web.user_repository import _repository, user_repository
from tests.utils.datastore import User
from tests.utils.events import http_event, lambda_context
from tests.utils.functions import load_module
from tests.utils.stored_json import by_the_model, same_answer


def _patch(user: User, body: Any) -> dict[str, Any]:
    """The handler's answer to PATCH /users/me as Lambda returns it (headers in order)."""
    event = http_event("PATCH", "/users/me", body=body, authorizer=user.context)
    answer: dict[str, Any] = load_module("users").handler(event, lambda_context("users"))
    return answer


@pytest.mark.parametrize(
    "patch",
    [
        {"display_name": 'ünï \u2028 🎉 "q" \\', "email": "ada@example.com"},
        {"preferences": {"a": {"b": [1, 2.5, None, "é", 1e16, -0.0]}, "n": 2**40}},
        {"display_name": None, "email": None},  # null clears them
        {},  # changes nothing: the profile as read
    ],
)
def test_a_patch_answers_what_fastapi_answered_with_the_model(
    alice: User,
    database: Database[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    patch: dict[str, Any],
) -> None:
    # GIVEN a user WHEN the profile is patched (the fast JSON)
    fast = _patch(alice, patch)
    # AND the profile as it now is, answered by the route through the model (a PATCH that
    # changes nothing)
    by_the_model(monkeypatch, UserModel)
    model = _patch(alice, {})
    # THEN the PATCH answered the same status, body and headers, in the same order
    assert fast["statusCode"] == 200
    same_answer(fast, model)
    assert list(fast["headers"])[:2] == ["content-length", "content-type"]
    # AND that is the profile as stored
    stored = database["users"].find_one({"_id": alice.id})
    assert stored is not None
    assert fast["body"] == UserModel.from_document(stored).model_dump_json()
    assert {key: json.loads(fast["body"])[key] for key in patch} == patch


def test_a_stored_value_the_fast_json_does_not_take_is_answered_by_the_model(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a stored email as bytes (the model converts it)
    database["users"].update_one({"_id": alice.id}, {"$set": {"email": b"a@b.c"}})
    # WHEN the display name is patched THEN the answer is the model's, as before
    patched = _patch(alice, {"display_name": "Ada"})
    assert patched["statusCode"] == 200
    assert json.loads(patched["body"])["email"] == "a@b.c"
    assert json.loads(patched["body"])["display_name"] == "Ada"


@pytest.mark.parametrize(
    ("patch", "status"),
    [
        ({"role": "admin"}, 422),  # a field no client may send
        ({"preferences": None}, 422),
        ({"email": "not an address"}, 422),
    ],
)
def test_an_error_is_answered_as_before(
    alice: User, monkeypatch: pytest.MonkeyPatch, patch: dict[str, Any], status: int
) -> None:
    # WHEN a PATCH is refused, by the route as it is and through the model
    fast = _patch(alice, patch)
    by_the_model(monkeypatch, UserModel)
    model = _patch(alice, patch)
    # THEN both answers are the same problem
    assert fast["statusCode"] == status
    same_answer(fast, model)


def test_a_missing_profile_is_404_as_before(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a signed-in user whose profile is gone
    database["users"].delete_one({"_id": alice.id})
    # WHEN it is patched, by the route as it is and through the model THEN the same 404
    fast = _patch(alice, {"display_name": "Ada"})
    by_the_model(monkeypatch, UserModel)
    model = _patch(alice, {"display_name": "Ada"})
    assert fast["statusCode"] == 404
    same_answer(fast, model)


async def _noting_a_header(request: Request, response: Response) -> UserRepository:
    response.headers["x-noted"] = "yes"
    response.status_code = 203
    return _repository(request.scope)


async def _noting_no_content(request: Request, response: Response) -> UserRepository:
    response.status_code = 204
    return _repository(request.scope)


# Declared at module level: FastAPI resolves a dependency's Request and Response annotations
# from its module's globals.
_NOTING = {"a header": _noting_a_header, "204": _noting_no_content}


def _get(user: User, body: Any) -> dict[str, Any]:
    """The handler's answer to GET /users/me as Lambda returns it (`body` unused)."""
    event = http_event("GET", "/users/me", authorizer=user.context)
    answer: dict[str, Any] = load_module("users").handler(event, lambda_context("users"))
    return answer


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize("noting", sorted(_NOTING))
def test_what_a_dependency_sets_on_the_response_is_answered_as_fastapi_does(
    alice: User, monkeypatch: pytest.MonkeyPatch, noting: str, method: str
) -> None:
    # GIVEN a users app whose repository dependency also sets a status or a header on the
    # injected response (FastAPI drops that response when an endpoint returns one of its own)
    app = load_module("users").app
    app.dependency_overrides[user_repository] = _NOTING[noting]
    call = _get if method == "GET" else _patch
    try:
        # WHEN the profile is read, or answered by a PATCH that changes nothing (each change
        # writes updated_at), by the route as it is and through the model
        fast = call(alice, {})
        by_the_model(monkeypatch, UserModel)
        model = call(alice, {})
    finally:
        app.dependency_overrides.clear()
    # THEN both answers are FastAPI's: the header and status kept, no body with a 204
    same_answer(fast, model)
    if noting == "a header":
        assert fast["statusCode"] == 203
        assert fast["headers"]["x-noted"] == "yes"
    else:
        assert fast["statusCode"] == 204
        assert fast["body"] == ""
