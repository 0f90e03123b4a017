"""What the fast JSON of the sessions and users routes (`Session.json_of`, `User.json_of`) is
compared with: documents as MongoDB gives them back, what FastAPI dumped of a route's response
model before, and a route's answer through the model.

Shared by tests/shared/sessions/test_session_json.py and the JSON tests of tests/functions/
sessions and tests/functions/users.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson.codec_options import CodecOptions
from fastapi.routing import APIRoute
from hypothesis import strategies as st
from pydantic import BaseModel

from lucid.store.documents import Document
from tests.utils.functions import load_module

# What a tz_aware client decodes (pymongo's tz_aware codec, as the functions' clients use).
_STORE: CodecOptions[Document] = CodecOptions(tz_aware=True)


def from_the_store(document: Document) -> Document:
    """`document` as MongoDB gives it back: BSON types (an int beyond 32 bits an Int64,
    datetimes to the millisecond in bson's UTC)."""
    decoded: Document = bson.decode(bson.encode(document), codec_options=_STORE)
    return decoded


def fastapi_dump(group: str, path: str, model: BaseModel) -> bytes:
    """What FastAPI answered for GET `path` of function `group` before the fast JSON: `model`
    validated and dumped by the route's response field (fastapi/routing.py serialize_response,
    with the route's options)."""
    route = next(
        r
        for r in load_module(group).app.routes
        if isinstance(r, APIRoute) and r.path == path and r.methods == {"GET"}
    )
    field = route.response_field
    assert field is not None
    value, errors = field.validate(model, {}, loc=("response",))
    assert not errors
    dumped: bytes = field.serialize_json(
        value,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
    )
    return dumped


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # unicode but surrogates
KEY = TEXT.filter(lambda key: "\0" not in key)
# Any JSON value a client may store (NaN and +-inf: stored by no route, dumped as null).
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=4),
    max_leaves=12,
)
MOMENT = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)


# Headers whose values are the request's own (its id) or the limiter's count.
PER_REQUEST = {"x-request-id", "x-ratelimit-remaining", "ratelimit", "x-ratelimit-reset"}


def by_the_model(monkeypatch: pytest.MonkeyPatch, model: type[BaseModel]) -> None:
    """From now on the routes answer through `model`, as FastAPI did before the fast JSON: its
    `json_of` takes no document, which the routes then answer with the model."""
    monkeypatch.setattr(model, "json_of", classmethod(lambda cls, document: None))


def same_answer(fast: dict[str, Any], model: dict[str, Any]) -> None:
    """Two Lambda answers of a route are the same: status, body, the headers in the same order
    and with the same values (but those of `PER_REQUEST`)."""
    assert fast["statusCode"] == model["statusCode"]
    assert fast["body"] == model["body"]
    assert list(fast["headers"]) == list(model["headers"])
    same = {name: value for name, value in model["headers"].items() if name not in PER_REQUEST}
    assert {name: fast["headers"][name] for name in same} == same
