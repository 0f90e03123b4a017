"""GET /users/me answers its JSON written without the model (`User.json_of`): byte for byte what
FastAPI dumped of the route's response model, through the real handler and over generated
stored users.

MongoDB is mongomock (a fresh in-memory database per test); Redis is the real test server.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pymongo.database import Database

from lucid.store.documents import Document
from lucid.users.schemas import User as UserModel
from tests.utils.datastore import User
from tests.utils.events import http_event, lambda_context
from tests.utils.functions import load_module
from tests.utils.stored_json import JSON, KEY, MOMENT, TEXT, fastapi_dump, from_the_store


@st.composite
def _stored_users(draw: st.DrawFn) -> Document:
    document: Document = {
        "_id": draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
        "address": draw(st.none() | TEXT),
        # a stored role the parser does not know is the least privileged one, in both paths
        "role": draw(st.none() | st.sampled_from(["user", "admin", "root", ""])),
        "display_name": draw(st.none() | TEXT),
        "email": draw(st.none() | TEXT),
        "preferences": draw(st.none() | st.dictionaries(KEY, JSON, max_size=5)),
        "created_at": draw(st.none() | MOMENT),
        "updated_at": draw(st.none() | MOMENT),
        "last_login_at": draw(st.none() | MOMENT),
    }
    # A user written before a field existed has none (from_document reads them with .get)
    for optional in draw(st.sets(st.sampled_from(sorted(set(document) - {"_id"})))):
        del document[optional]
    return from_the_store(document)


@settings(deadline=None)  # the first example loads the users function
@given(_stored_users())
@example(
    from_the_store(
        {
            "_id": "a" * 32, "address": "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8", "role": "admin",
            "display_name": "ünï 🎉 \"q\" \\ \u2028", "email": None,
            "preferences": {"k": [1.5, -0.0, 1e16, 2**40, None, {"é": "\t"}], "n": [math.nan]},
            "created_at": datetime(2026, 12, 5, 7, 11, 18, 220_000, tzinfo=UTC),
            "updated_at": None,
            "last_login_at": datetime(2026, 12, 5, tzinfo=UTC),
        }
    )
)  # fmt: skip
def test_the_json_of_a_stored_user_is_what_fastapi_dumped_of_its_model(
    document: Document,
) -> None:
    body = UserModel.json_of(document)
    assert body is not None  # every value of the exact type the model holds: the fast JSON
    assert body == fastapi_dump("users", "/users/me", UserModel.from_document(document))


_NOW = datetime(2026, 12, 5, 7, 0, 0, 123_000, tzinfo=UTC)
_USER: Document = {
    "_id": "a" * 32, "address": "T" * 34, "role": "user", "display_name": "d", "email": None,
    "preferences": {}, "created_at": _NOW, "updated_at": _NOW, "last_login_at": _NOW,
}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        ("_id", 7, True),
        ("address", 7, True),
        ("display_name", b"d", False),  # pydantic converts bytes to str
        ("email", 7, True),
        ("preferences", [1], True),
    ],
)
def test_a_value_of_another_type_is_left_to_the_model(
    field: str, value: Any, refused: bool
) -> None:
    # GIVEN a stored user with one value not of the exact type the model holds
    document = {**_USER, field: value}
    # THEN the fast JSON does not take it: the route answers what the model makes of it
    assert UserModel.json_of(document) is None
    if refused:
        with pytest.raises(ValidationError):
            UserModel.from_document(document)
    else:
        assert isinstance(UserModel.from_document(document), UserModel)


def test_a_user_without_id_raises_what_the_model_raised() -> None:
    document = {key: value for key, value in _USER.items() if key != "_id"}
    with pytest.raises(KeyError) as fast:
        UserModel.json_of(document)
    with pytest.raises(KeyError) as model:
        UserModel.from_document(document)
    assert fast.value.args == model.value.args == ("_id",)


def _me(user: User) -> dict[str, Any]:
    event = http_event("GET", "/users/me", authorizer=user.context)
    answer: dict[str, Any] = load_module("users").handler(event, lambda_context("users"))
    return answer


def test_get_users_me_answers_the_model_s_bytes_and_headers(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a stored profile with unicode and nested preferences
    database["users"].update_one(
        {"_id": alice.id},
        {"$set": {"display_name": "ünï 🎉", "preferences": {"a": {"b": [1, 2.5, None, "é"]}}}},
    )
    stored = database["users"].find_one({"_id": alice.id})
    assert stored is not None
    # WHEN it is read (the fast JSON)
    read = _me(alice)
    # THEN the body is the model's JSON of the stored document, with the model's headers first
    assert read["statusCode"] == 200
    assert read["body"] == UserModel.from_document(stored).model_dump_json()
    assert json.loads(read["body"])["preferences"] == {"a": {"b": [1, 2.5, None, "é"]}}
    assert list(read["headers"])[:2] == ["content-length", "content-type"]
    assert read["headers"]["content-type"] == "application/json"
    assert read["headers"]["content-length"] == str(len(read["body"].encode()))


def test_a_stored_profile_the_fast_json_does_not_take_is_answered_by_the_model(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a stored display name as bytes (the model converts it)
    database["users"].update_one({"_id": alice.id}, {"$set": {"display_name": b"bytes"}})
    # WHEN it is read THEN the answer is the model's, as before
    read = _me(alice)
    assert read["statusCode"] == 200
    assert json.loads(read["body"])["display_name"] == "bytes"
