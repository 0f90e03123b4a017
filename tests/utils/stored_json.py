"""What the fast JSON of GET /sessions/{id} and GET /users/me (`Session.json_of`,
`User.json_of`) is compared with: documents as MongoDB gives them back, and what FastAPI dumped
of a route's response model before.

Shared by tests/shared/sessions/test_session_json.py and tests/functions/users/
test_users_me_json.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import bson
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
