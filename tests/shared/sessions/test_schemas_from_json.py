"""`same_from_json`: what a sessions body model accepts from raw JSON bytes, FastAPI's path
(Python's json.loads, then the model) accepts with the same values (lucid.web.flat_dependencies
`Lean`)."""

import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lucid.sessions.schemas import SessionCreate

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=8) | JSON_SCALARS,
        "node_id": st.from_regex(r"[A-Za-z0-9._:-]{0,5}", fullmatch=True) | JSON_SCALARS,
        "metadata": JSON_VALUES,
        "status": st.just("pending"),
    },
)


def _typed(value: Any) -> Any:
    """`value` with each scalar's type and exact repr (1 and 1.0, 0.0 and -0.0 differ)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value).__name__, repr(value))


def _assert_same(model: type[BaseModel], body: bytes) -> None:
    try:
        fast = model.model_validate_json(body)
    except ValidationError:
        return  # FastAPI's path answers this one, as before
    slow = model.model_validate(json.loads(body))
    assert _typed(fast.model_dump()) == _typed(slow.model_dump())
    assert fast.model_fields_set == slow.model_fields_set


def _encodings(value: Any) -> list[bytes]:
    text = [
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        json.dumps(value, separators=(",", ":"), indent=1),
    ]
    return [t.encode("utf-8", "surrogatepass") for t in text]


@settings(max_examples=150, deadline=None)
@given(BODIES)
@example({"name": "a", "metadata": {"k": 1e308 * 10}})
@example({"name": "a", "metadata": {"k": 2**64}})
@example({"name": "\ud800"})
def test_a_body_the_json_path_accepts_is_the_same_through_json_loads(value: Any) -> None:
    for body in _encodings(value):
        _assert_same(SessionCreate, body)


@settings(max_examples=150, deadline=None)
@given(BODIES, st.integers(min_value=0), st.binary(min_size=1, max_size=3))
def test_a_mangled_body_the_json_path_accepts_is_the_same_through_json_loads(
    value: Any, at: int, inserted: bytes
) -> None:
    body = json.dumps(value).encode("utf-8", "surrogatepass")
    cut = at % (len(body) + 1)
    _assert_same(SessionCreate, body[:cut] + inserted + body[cut:])
    _assert_same(SessionCreate, body[:cut] + body[cut + len(inserted) :])


@pytest.mark.parametrize(
    "body",
    [
        b'{"name":"a","name":"b"}',  # the last of a key, as json.loads
        b'{"name":"a","metadata":{"k":1,"k":2.5}}',
        b'{"name":"a","metadata":{"k":NaN}}',
        b'{"name":"a","metadata":{"k":"\\ud800"}}',
        b'{"name":"a\\ud83d\\ude00 "}',
        b'\xef\xbb\xbf{"name":"a"}',  # json.loads reads a UTF-8 BOM; the JSON path refuses it
        b'{"name":"\xff"}',
        b'{"name":"a\x01"}',
        b'{"name":"a","metadata":{"k":"a\tb"}}',
        b'{"name":"a","metadata":{"k":-0,"l":-0.0,"m":1E2,"n":-1e-400}}',
        b'{"name":"a","metadata":{"k":1.00000000000000011102230246251565404236316680908203125}}',
        b'{"name":"a","metadata":{"k":123456789012345678901234567890.5}}',
        b'{"name":"a","metadata":{"k":9223372036854775807,"l":-9223372036854775808}}',
        b'{"name":"a"}\r\n\t ',
        b'{"name":"a",}',
        b'{"name":"a"}\x00',
        b'{"name":"a","metadata":' + b'{"k":' * 17 + b"1" + b"}" * 18,
        b'{"name":"a","metadata":' + b"[" * 300 + b"]" * 300 + b"}",
    ],
)
def test_the_json_readers_agree_on_edge_cases(body: bytes) -> None:
    _assert_same(SessionCreate, body)


def test_the_sessions_create_body_declares_it() -> None:
    assert SessionCreate.same_from_json is True
