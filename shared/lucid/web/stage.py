"""The API Gateway stage in the request path: routed past, kept in what the client sees.

On a named stage an HTTP API puts the stage in front of the path it hands the function:
`GET https://{api}.execute-api.{region}.amazonaws.com/dev/health` arrives with
`rawPath` and `requestContext.http.path` = `/dev/health`, `requestContext.stage` = `dev` and
`routeKey` = `GET /health` (notes/aws-facts.md section 1; aws-powertools issue #621,
serverless-wsgi issue #191). The `$default` stage serves at the root without a prefix, and so
do a custom domain's API mappings and `sam local start-api` (which sends `stage` = the
StageName but no prefix: aws-sam-cli `samcli/local/apigw/event_constructor.py`).

`StagePathMiddleware` therefore treats `/{stage}` as the ASGI `root_path` when, and only when,
the path starts with it: routes match the stage-relative path wherever the function runs, while
`request.url` (problem+json `instance`) keeps the path the client asked for, and a `Location`
the app gives relative to its root (`/sessions/42`) gets the stage back (`/dev/sessions/42`) so
that a client can follow it. A route key the path only matches with the prefix kept (a custom
domain serving stage `users` at `/users/me`) keeps the path whole.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_STAGE = "$default"
_LOCATION = b"location"
_PARAMETER = re.compile(r"\\\{[^/]+?\\\+?\\\}")


@functools.lru_cache(maxsize=256)
def _route_pattern(route_path: str) -> re.Pattern[str]:
    # "/users/{id}" -> ^/users/[^/]+$ ; a greedy "{proxy+}" takes the rest of the path.
    escaped = re.escape(route_path)
    pattern = _PARAMETER.sub(lambda m: ".+" if m.group(0).endswith(r"+\}") else "[^/]+", escaped)
    return re.compile(pattern + r"\Z", re.DOTALL)


def _matches_route(route_key: Any, path: str) -> bool | None:
    """Whether `path` matches the route key's path template; None when the key names none."""
    if not isinstance(route_key, str) or " " not in route_key:
        return None  # "$default" (or absent): any path
    return _route_pattern(route_key.split(" ", 1)[1]).match(path) is not None


def stage_prefix(event: Any, path: str) -> str:
    """`/{stage}` when `path` (of the API Gateway `event`) carries its named stage, else ""."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    stage = context.get("stage") if isinstance(context, dict) else None
    if not isinstance(stage, str) or not stage or stage == DEFAULT_STAGE:
        return ""
    prefix = "/" + stage
    if path != prefix and not path.startswith(prefix + "/"):
        return ""  # $default-like delivery: sam local, a custom domain's API mapping
    route_key = context.get("routeKey") if isinstance(context, dict) else None
    stripped = path[len(prefix) :] or "/"
    if _matches_route(route_key, stripped) is False and _matches_route(route_key, path):
        return ""  # the route itself starts with the stage's name
    return prefix


def api_url(scope: Scope) -> str | None:
    """The API's own URL as this request reached it, or None outside API Gateway: `https://`,
    `requestContext.domainName` (set by API Gateway, not the client's Host header: the
    execute-api domain, or the custom domain the request came through; payload format 2.0 in
    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html)
    and the stage prefix the path carries (`root_path`, set by StagePathMiddleware)."""
    event = scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    domain = context.get("domainName") if isinstance(context, dict) else None
    if not isinstance(domain, str) or not domain:
        return None
    return f"https://{domain}{scope.get('root_path', '')}"


class StagePathMiddleware:
    """Sets `root_path` to the request's stage prefix and restores it in `Location` headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        prefix = ""
        if scope["type"] == "http":
            prefix = stage_prefix(scope.get("aws.event"), scope["path"])
        if not prefix:
            await self.app(scope, receive, send)
            return
        scope["root_path"] = scope.get("root_path", "") + prefix
        encoded = prefix.encode("latin-1")

        async def send_with_stage(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, encoded + value if _is_root_relative(name, value) else value)
                    for name, value in message.get("headers", ())
                ]
            await send(message)

        await self.app(scope, receive, send_with_stage)


def _is_root_relative(name: bytes, value: bytes) -> bool:
    # "/sessions/42" (an absolute-path reference), not "//host/x" nor "https://..."
    return name.lower() == _LOCATION and value.startswith(b"/") and not value.startswith(b"//")
