"""The problem+json bodies as pydantic models, for the OpenAPI document's schemas only.

Our error handlers write these bodies themselves (`lucid.web.problems`); nothing validates
against the models. `lucid.web.openapi.describe` imports them when a document is built (the
`lucid openapi` command, the tests), so no cold start creates them: ~0.8 ms of CPU each
function's start paid for them in `lucid.web.openapi`, even with `defer_build`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lucid.errors import PROBLEM_TYPE_BASE


class FieldError(BaseModel):
    """One invalid input of a 422: where it is and what is wrong (the value is never echoed)."""

    model_config = ConfigDict(defer_build=True)

    loc: list[str] = Field(description="where: body/query/path/header, then the field names")
    msg: str
    type: str = Field(description="the kind of error, e.g. missing, string_too_long")


class Problem(BaseModel):
    """An RFC 9457 problem detail; a problem type may add members of its own."""

    model_config = ConfigDict(
        extra="allow",
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_TYPE_BASE + "not-found",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "no such session",
                    "instance": "/sessions/0f8fad5bd9cb469fa16570867728950e",
                }
            ]
        },
    )

    type: str = Field(description="URI of the problem type ('about:blank' for plain HTTP errors)")
    title: str = Field(description="the status's reason phrase")
    status: int = Field(ge=400, le=599, description="the HTTP status, repeated")
    detail: str = Field(description="what went wrong for this request, for a person to read")
    instance: str = Field(description="the path of the request")


class ValidationProblem(Problem):
    """A 422 problem: the request did not match the route's schema."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_TYPE_BASE + "validation",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "invalid address",
                    "instance": "/auth/challenge",
                    "errors": [
                        {"loc": ["body", "address"], "msg": "Field required", "type": "missing"}
                    ],
                }
            ]
        },
    )

    errors: list[FieldError]
