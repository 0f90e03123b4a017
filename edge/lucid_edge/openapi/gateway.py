"""What API Gateway answers by itself, in front of the functions, as the template configures it.

These answers never reach a function: their body is API Gateway's own `{"message": ...}` JSON,
not problem+json, and they carry none of the functions' headers. The document describes AWS; the
local edge gives the same answers (lucid_edge.responses), except that it still answers a failed
function 502 where AWS answers 500. Sources:
- authorizer: no identity source -> 401 without invoking it; `isAuthorized: false` -> 403;
  authorizer error or timeout -> 500
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html);
- stage or route throttling -> 429
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html);
- no route for the path -> 404 `{"message":"Not Found"}`
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html);
- payload over the 10 MB quota -> 413 (status not documented by AWS; what the local edge sends)
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html);
- function error, timeout or malformed result -> 500, integration timeout (30 s) -> 503
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-lambda.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lucid_edge.model import ApiSpec, AuthorizerSpec, RouteSpec

MESSAGE_SCHEMA = "GatewayMessage"
MESSAGE_MEDIA_TYPE = "application/json"
_SCHEMAS = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    """One status API Gateway may answer for a route, its exact body and when."""

    status: int
    message: str
    when: str


def message_schema() -> dict[str, Any]:
    """The JSON schema of API Gateway's own error body."""
    return {
        "type": "object",
        "description": "An answer API Gateway gives by itself (no function was involved, or the "
        "function failed): the status's reason phrase, never problem+json",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
        "examples": [{"message": "Not Found"}],
    }


def security_scheme(authorizer: AuthorizerSpec) -> dict[str, Any]:
    """The OpenAPI security scheme of a Lambda REQUEST authorizer reading a bearer token."""
    sources = ", ".join(authorizer.identity_headers) or "none"
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            f"The access token of POST /auth/login or /auth/refresh, checked by the "
            f"`{authorizer.name}` Lambda authorizer before the function runs (identity source: "
            f"{sources}). No header: 401 without invoking it; a refused token: 403. API Gateway "
            f"caches each decision per header value for the template's AuthorizerTtlSeconds, "
            f"so a revoked token may pass the authorizer until its cached decision expires (the "
            f"functions re-check what they must)."
        ),
    }


def gateway_answers(
    route: RouteSpec, api: ApiSpec, *, path_parameters: bool, body: bool
) -> list[GatewayAnswer]:
    """The answers API Gateway itself may give to a request on `route`, by status."""
    answers: list[GatewayAnswer] = []
    if path_parameters:
        answers.append(
            GatewayAnswer(
                404, "Not Found", "the path matched no route (a value holding `/`, or empty)"
            )
        )
    if route.authorizer is not None:
        answers += [
            GatewayAnswer(401, "Unauthorized", "no Authorization header"),
            GatewayAnswer(403, "Forbidden", "the authorizer refused the token"),
        ]
    if body:
        answers.append(GatewayAnswer(413, "Request Entity Too Large", "a body over 10 MB"))
    if route.throttle is not None or api.default_throttle is not None:
        answers.append(
            GatewayAnswer(429, "Too Many Requests", "the stage's or route's throttle is exceeded")
        )
    failed = "the function failed, timed out or returned an invalid result"
    if route.authorizer is not None:
        failed = "the authorizer or " + failed.removeprefix("the ")
    answers += [
        GatewayAnswer(500, "Internal Server Error", failed),
        GatewayAnswer(503, "Service Unavailable", "no answer within the 30 s integration timeout"),
    ]
    return answers


def add_answer(responses: dict[str, Any], answer: GatewayAnswer) -> None:
    """Describe `answer` in an operation's `responses`, beside what the function answers."""
    media = {
        "schema": {"$ref": _SCHEMAS + MESSAGE_SCHEMA},
        "example": {"message": answer.message},
    }
    own = f"API Gateway's own answer when {answer.when}"
    response = responses.get(str(answer.status))
    if response is None:
        responses[str(answer.status)] = {
            "description": own[0].upper() + own[1:],
            "content": {MESSAGE_MEDIA_TYPE: media},
        }
        return
    response["description"] = f"{response['description']}; or {own}"
    response.setdefault("content", {})[MESSAGE_MEDIA_TYPE] = media
    # API Gateway's answer carries none of the function's headers.
    if "headers" in response:
        response["headers"] = {
            name: {**value, "required": False} for name, value in response["headers"].items()
        }
