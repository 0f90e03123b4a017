"""What a function's OpenAPI document says that FastAPI cannot see in a route's signature.

FastAPI describes each route's parameters, body and success model. The rest is declared here,
beside the code that produces it, so the gateway's one document (`lucid openapi`, built from the
functions' documents and the template) is generated from the code:

- every error is RFC 9457 problem+json (`lucid.web.problems`), never FastAPI's default shape: a
  route declares its own errors with `responses=problems(404, 409)`, and `install_openapi`
  files every error response under `application/problem+json`, FastAPI's 422 included;
- every answer of a function carries X-Request-ID (`lucid.web.middleware`), and every answer
  of a rate-limited function, whatever its status, the rate-limit headers (`lucid.web.ratelimit`);
- operation ids are the route's name (`operation_id`), with the method appended where one route
  serves several methods, unique across the gateway.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from lucid.errors import PROBLEM_CONTENT_TYPE

Responses = dict[int | str, dict[str, Any]]

_SCHEMAS = "#/components/schemas/"
# FastAPI's own 422 body, which our validation handler never sends (it answers ValidationProblem).
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

DESCRIPTIONS: Mapping[int, str] = {
    400: "Bad request: a header or path the function refuses (the detail says which)",
    401: "No signed-in caller, or credentials that were refused (the type says why)",
    403: "The caller's role does not allow this",
    404: "Not found, or not the caller's to see",
    409: "Conflict with the resource's current state",
    412: "If-Match no longer matches the resource (`current_etag` holds its ETag)",
    422: "Invalid input: `errors` names each field (`loc`) and what is wrong with it",
    429: "The caller's quota is spent: Retry-After says when to come back",
    500: "The function failed unexpectedly",
    502: "The backend refused the connection or dropped it",
    503: "A dependency (Redis, MongoDB, a backend or its circuit breaker) is unavailable",
    504: "The backend did not answer in time",
}


def header(description: str, *, kind: str = "string", required: bool = False) -> dict[str, Any]:
    """An OpenAPI header object."""
    return {"description": description, "required": required, "schema": {"type": kind}}


REQUEST_ID = header(
    "the caller's X-Request-ID when well formed, else API Gateway's request id", required=True
)
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": header("requests allowed per window at the caller's tier", kind="integer"),
    "X-RateLimit-Remaining": header("requests left in the current window", kind="integer"),
    "X-RateLimit-Reset": header(
        "seconds until the current window ends; the window slides, so what was used in it comes "
        "back gradually over the next one (Retry-After is the exact wait for one request)",
        kind="integer",
    ),
    "RateLimit-Policy": header('IETF draft: `"<tier>";q=<quota>;w=<window s>`'),
    "RateLimit": header(
        'IETF draft: `"<tier>";r=<remaining>;t=<X-RateLimit-Reset>`; on a 429 `t` is Retry-After'
    ),
}
UNREADABLE_BODY = "the body could not be read as JSON text (it is not UTF-8)"
RETRY_AFTER = header("seconds to wait before retrying", kind="integer", required=True)


def problems(
    *statuses: int,
    descriptions: Mapping[int, str] | None = None,
    retry_after: Mapping[int, bool] | None = None,
) -> Responses:
    """`responses=` for a route that answers these error statuses (as problem+json).

    `retry_after` names the statuses whose answer carries `Retry-After` besides 429's (always):
    True when every such answer does, False when only some do (a 409 for a lease held by another
    request has it, the refusal to demote the last admin has not).

    The schema is a reference, not FastAPI's `model`: a model makes FastAPI build a validator for
    every route at import, which a cold start would pay for a document it never serves (the
    schemas are added when the document is built, by `describe`)."""
    described = {**DESCRIPTIONS, **(descriptions or {})}
    waits = {429: True, **(retry_after or {})}
    answers: Responses = {}
    for status in statuses:
        model = "ValidationProblem" if status == 422 else "Problem"
        answer: dict[str, Any] = {
            "description": described[status],
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _SCHEMAS + model}}},
        }
        if status in waits:
            answer["headers"] = {"Retry-After": {**RETRY_AFTER, "required": waits[status]}}
        answers[status] = answer
    return answers


def operation_id(route: APIRoute) -> str:
    """A route's operation id: its name (the handler's, unless the route names itself)."""
    return route.name


def install_openapi(app: FastAPI, *, rate_limited: bool) -> None:
    """Make `app.openapi()` describe what the function really answers (see the module doc)."""
    fastapi_document = app.openapi

    @functools.cache
    def openapi() -> dict[str, Any]:
        with warnings.catch_warnings():
            # One route serving several methods gives them one id, which FastAPI warns about;
            # `describe` gives each method its own.
            warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
            document = copy.deepcopy(fastapi_document())
        return describe(document, rate_limited=rate_limited)

    app.openapi = openapi  # type: ignore[method-assign]


def describe(document: dict[str, Any], *, rate_limited: bool) -> dict[str, Any]:
    """`document` (FastAPI's) with problem+json errors and the headers every answer carries."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _one_id_per_operation(document)
    for operation in _operations(document):
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            # FastAPI's own answer to a body that is not UTF-8 text (our handler: problem+json).
            unreadable = operation["responses"].setdefault("400", problems(400)[400])
            if unreadable["description"] == DESCRIPTIONS[400]:
                unreadable["description"] = UNREADABLE_BODY[:1].upper() + UNREADABLE_BODY[1:]
            else:
                unreadable["description"] += "; or " + UNREADABLE_BODY
        for status, response in operation.get("responses", {}).items():
            content = response.get("content")
            if status == "422" and content and PROBLEM_CONTENT_TYPE not in content:
                # FastAPI's own 422 (HTTPValidationError, under the route's media type): our
                # handler answers it as a ValidationProblem.
                response["content"] = problems(422)[422]["content"]
                response["description"] = DESCRIPTIONS[422]
            headers = response.setdefault("headers", {})
            # A 500 comes from Starlette's outermost error middleware, around ours: no request id.
            headers.setdefault("X-Request-ID", {**REQUEST_ID, "required": status != "500"})
            # The limiter's headers are on every answer it decided, errors and 500s included
            # (`lucid.web.ratelimit`); not required: RATE_LIMIT_ENABLED=false sends none, and
            # neither does the 503 of a limiter that cannot decide (RATE_LIMIT_FAIL_MODE=closed).
            if rate_limited:
                for name, value in RATE_LIMIT_HEADERS.items():
                    headers.setdefault(name, value)
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    # Imported here: the models exist for documents only, never at a cold start (problem_models).
    from lucid.web.problem_models import Problem, ValidationProblem

    text = json.dumps(document)
    for model in (Problem, ValidationProblem):
        if f'"{_SCHEMAS}{model.__name__}"' in text:
            _add_schemas(schemas, model)
    return document


def _one_id_per_operation(document: Mapping[str, Any]) -> None:
    """`<id>_<method>` for each method of a route that serves several under one id."""
    methods = [
        (method, operation)
        for item in document.get("paths", {}).values()
        for method, operation in item.items()
    ]
    ids = [operation.get("operationId") for _, operation in methods]
    for method, operation in methods:
        if ids.count(operation.get("operationId")) > 1:
            operation["operationId"] = f"{operation['operationId']}_{method}"


def _operations(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [op for path in document.get("paths", {}).values() for op in path.values()]


def _add_schemas(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    generated = model.model_json_schema(ref_template=_SCHEMAS + "{model}")
    for name, schema in generated.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault(model.__name__, generated)
