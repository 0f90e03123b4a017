"""A FunctionRouter route whose JSON body is a `same_from_json` model is served lean (the body
validated from its bytes, absent optional headers not looked up) and answers every request as
FastAPI's own path answers it (lucid.web.flat_dependencies `Lean`)."""

import json
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header, Request, Response
from hypothesis import given, settings
from hypothesis import strategies as st

from lucid.errors import AuthenticationError
from lucid.sessions.schemas import SessionCreate
from lucid.web.app import FunctionRouter, create_app, lambda_handler
from lucid.web.flat_dependencies import lean
from tests.utils.events import http_event

parsed_from_json: list[bytes] = []


class Thing(SessionCreate):
    """The sessions create body, counting the bodies validated from their bytes (the lean path)."""

    @classmethod
    def model_validate_json(cls, json_data: Any, **kwargs: Any) -> Any:
        parsed_from_json.append(json_data)
        return super().model_validate_json(json_data, **kwargs)


async def who(request: Request) -> str:
    if "x-refuse" in request.headers:
        raise AuthenticationError("refused")
    return "caller"


def _app() -> tuple[FastAPI, Any]:
    router = FunctionRouter(rate_limited=False)

    @router.post("/things/{name}", status_code=201)
    async def make(
        name: str,
        body: Thing,
        caller: Annotated[str, Depends(who)],
        response: Response,
        key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=8)] = None,
        tag: Annotated[str | None, Header(max_length=4)] = None,
    ) -> dict[str, Any]:
        response.headers["Location"] = f"/things/{name}"
        return {
            "name": name,
            "caller": caller,
            "body": body.model_dump(),
            "types": {k: type(v).__name__ for k, v in body.model_dump().items()},
            "set": sorted(body.model_fields_set),
            "key": key,
            "tag": tag,
        }

    app = create_app("things", router, rate_limited=False)
    return app, lambda_handler(app)


APP, HANDLER = _app()


def _both(event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer as served, and as FastAPI's own path serves it (any dependency override on the
    app makes a FunctionRouter route FastAPI's, lucid.web.flat_dependencies)."""
    served = HANDLER(event, None)
    APP.dependency_overrides[_both] = _both
    try:
        fastapi_own = HANDLER(event, None)
    finally:
        APP.dependency_overrides.clear()
    return served, fastapi_own


def _event(
    body: bytes | None, content_type: str | None = "application/json", **headers: str
) -> dict[str, Any]:
    sent = dict(headers)
    if content_type is not None:
        sent["content-type"] = content_type
    return http_event("POST", "/things/x", headers=sent, body=body)


def test_a_plain_json_body_is_served_lean_with_the_headers_default() -> None:
    parsed_from_json.clear()
    served, own = _both(_event(b'{"name": " a ", "metadata": {"k": [1, 2.5, null]}}'))
    assert parsed_from_json == [b'{"name": " a ", "metadata": {"k": [1, 2.5, null]}}']
    assert served == own
    assert served["statusCode"] == 201
    assert served["headers"]["location"] == "/things/x"
    answer = json.loads(served["body"])
    assert answer["body"] == {"name": "a", "node_id": None, "metadata": {"k": [1, 2.5, None]}}
    assert (answer["key"], answer["tag"], answer["caller"]) == (None, None, "caller")


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        # sent headers are FastAPI's to read and check, with the body's errors in one 422
        (b'{"name":"a"}', "application/json", {"idempotency-key": "k1"}),
        (b'{"name":"a"}', "application/json", {"Idempotency-Key": "far-too-long"}),
        (b'{"nom":"a"}', "application/json", {"idempotency-key": "far-too-long"}),
        (b'{"name":"a"}', "application/json", {"tag": "t"}),
        (b'{"name":"a"}', "application/json", {"tag": "too long"}),
        # other content types: FastAPI parses some as JSON, refuses the others' bytes
        (b'{"name":"a"}', "application/json; charset=utf-8", {}),
        (b'{"name":"a"}', "Application/JSON", {}),
        (b'{"name":"a"}', "application/merge-patch+json", {}),
        (b'{"name":"a"}', "text/plain", {}),
        (b'{"name":"a"}', None, {}),
        # bodies the model or JSON refuses: FastAPI's 422 with its loc, msg and type
        (b'{"nom":"a"}', "application/json", {}),
        (b'{"name":"a","status":"active"}', "application/json", {}),
        (b'{"name":""}', "application/json", {}),
        (b'{"name":"a","node_id":"no spaces"}', "application/json", {}),
        (b'{"name":"a","metadata":{"$set":1}}', "application/json", {}),
        (b'{"name":"a","metadata":{"k":NaN}}', "application/json", {}),
        (b'{"name":"a","metadata":{"k":"\\ud800"}}', "application/json", {}),
        (b'{"name":"a","metadata":{"k":"' + b"x" * 17000 + b'"}}', "application/json", {}),
        (b'{"name":"a",}', "application/json", {}),
        (b"{not json", "application/json", {}),
        (b"\xef\xbb\xbf" + b'{"name":"a"}', "application/json", {}),
        (b'{"name":"\xff"}', "application/json", {}),
        (b"null", "application/json", {}),
        (b"[]", "application/json", {}),
        (b"", "application/json", {}),
        (None, "application/json", {}),
        # a refusing dependency answers first, whatever the body, unless it is not JSON
        (b'{"name":"a"}', "application/json", {"x-refuse": "1"}),
        (b'{"nom":"a"}', "application/json", {"x-refuse": "1"}),
        (b"{not json", "application/json", {"x-refuse": "1"}),
    ],
)
def test_any_request_is_answered_as_fastapi_answers_it(
    body: bytes | None, content_type: str | None, headers: dict[str, str]
) -> None:
    served, own = _both(_event(body, content_type, **headers))
    assert served == own
    if served["statusCode"] == 201:  # the headers sent reach the route
        answer = json.loads(served["body"])
        assert (answer["key"], answer["tag"]) == (
            headers.get("idempotency-key", headers.get("Idempotency-Key")),
            headers.get("tag"),
        )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    st.fixed_dictionaries(
        {}, optional={"name": st.text(max_size=6) | JSON, "node_id": JSON, "metadata": JSON}
    ),
    st.booleans(),
)
def test_any_json_body_is_answered_as_fastapi_answers_it(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    served, own = _both(_event(body))
    assert served == own


def test_a_route_fastapi_could_refuse_otherwise_or_without_the_promise_is_not_lean() -> None:
    router = FunctionRouter(rate_limited=False)

    @router.post("/a")
    async def a(body: SessionCreate, caller: Annotated[str, Depends(who)]) -> None: ...

    @router.post("/b")
    async def b(body: SessionCreate, size: int = 1) -> None: ...  # a query parameter

    @router.post("/c")
    async def c(body: SessionCreate, key: Annotated[str, Header()]) -> None: ...  # required

    class Plain(SessionCreate):
        same_from_json = False

    @router.post("/d")
    async def d(body: Plain, caller: Annotated[str, Depends(who)]) -> None: ...

    from lucid.web.flat_dependencies import flattened

    kinds = {}
    for route in router.routes:
        flat = flattened(route.dependant)  # type: ignore[attr-defined]
        kinds[route.path] = flat is not None and lean(flat.dependant) is not None  # type: ignore[attr-defined]
    assert kinds == {"/a": True, "/b": False, "/c": False, "/d": False}
