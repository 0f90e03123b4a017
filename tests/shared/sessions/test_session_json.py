"""`Session.json_of`: the JSON GET /sessions/{id} answers, written without building the model,
is byte for byte what FastAPI dumps of the route's response model (no network)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lucid.sessions.lifecycle import SessionStatus
from lucid.sessions.schemas import Session
from lucid.store.documents import Document
from tests.utils.stored_json import JSON, KEY, MOMENT, TEXT, fastapi_dump, from_the_store


@st.composite
def _stored_sessions(draw: st.DrawFn) -> Document:
    document: Document = {
        "_id": draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
        "owner_id": draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
        "name": draw(TEXT),
        "node_id": draw(st.none() | TEXT),
        "status": draw(st.sampled_from([status.value for status in SessionStatus])),
        "metadata": draw(st.dictionaries(KEY, JSON, max_size=5)),
        "created_at": draw(MOMENT),
        "updated_at": draw(MOMENT),
        "started_at": draw(st.none() | MOMENT),
        "ended_at": draw(st.none() | MOMENT),
        "version": draw(st.integers(min_value=1, max_value=2**31 - 1)),
    }
    # A session written before a field existed has none (from_document reads them with .get)
    for optional in draw(st.sets(st.sampled_from(["node_id", "metadata", "started_at"]))):
        del document[optional]
    return from_the_store(document)


@settings(deadline=None)  # the first example loads the sessions function
@given(_stored_sessions())
@example(
    from_the_store(
        {
            "_id": "a" * 32, "owner_id": "b" * 32, "name": "ünï 🎉 \"q\" \\ \u2028",
            "node_id": None, "status": "ended",
            "metadata": {
                "k": [1.5, -0.0, 1e16, 2**40, None, {"é": "\t"}], "n": [math.nan, -math.inf]
            },
            "created_at": datetime(2026, 12, 5, 7, 11, 18, 220_000, tzinfo=UTC),
            "updated_at": datetime(2026, 12, 5, 7, 11, 18, 999_000, tzinfo=UTC),
            "started_at": None, "ended_at": datetime(2026, 12, 5, tzinfo=UTC), "version": 3,
        }
    )
)  # fmt: skip
def test_the_json_of_a_stored_session_is_what_fastapi_dumped_of_its_model(
    document: Document,
) -> None:
    body = Session.json_of(document)
    assert body is not None  # every value of the exact type the model holds: the fast JSON
    assert body == fastapi_dump(
        "sessions", "/sessions/{session_id}", Session.from_document(document)
    )


_NOW = datetime(2026, 12, 5, 7, 0, 0, 123_000, tzinfo=UTC)
_SESSION: Document = {
    "_id": "a" * 32, "owner_id": "b" * 32, "name": "n", "node_id": "node-7", "status": "active",
    "metadata": {}, "created_at": _NOW, "updated_at": _NOW, "started_at": _NOW, "ended_at": None,
    "version": 2,
}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "refused"),
    [
        ("version", bson.int64.Int64(3), False),  # beyond 32 bits the store gives an Int64
        ("version", "3", False),  # pydantic converts it
        ("version", True, False),  # an int to pydantic (1)
        ("status", "paused", True),
        ("status", SessionStatus.ENDED, False),
        ("name", 7, True),
        ("node_id", 7, True),
        ("metadata", [], True),
        ("created_at", None, True),
        ("_id", None, True),
    ],
)
def test_a_value_of_another_type_is_left_to_the_model(
    field: str, value: Any, refused: bool
) -> None:
    # GIVEN a stored session with one value not of the exact type the model holds
    document = {**_SESSION, field: value}
    # THEN the fast JSON does not take it: the route answers what the model makes of it,
    # a conversion or the same refusal as before
    assert Session.json_of(document) is None
    if refused:
        with pytest.raises(ValidationError):
            Session.from_document(document)
    else:
        assert isinstance(Session.from_document(document), Session)


def test_a_missing_field_raises_what_the_model_raised() -> None:
    for field in ("_id", "owner_id", "name", "status", "created_at", "updated_at", "version"):
        document = {key: value for key, value in _SESSION.items() if key != field}
        with pytest.raises(KeyError) as fast:
            Session.json_of(document)
        with pytest.raises(KeyError) as model:
            Session.from_document(document)
        assert fast.value.args == model.value.args == (field,)
