"""API Gateway HTTP API payload 2.0 events for functional tests, built from one template event."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from lucid_edge.events import LambdaContext

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return data


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of tests/events/<name>."""
    return copy.deepcopy(_load(name))


def http_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    source_ip: str = "198.51.100.7",
    authorizer: dict[str, Any] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A payload 2.0 event for `method path`, as API Gateway would send it to the function."""
    event = load_event("http_api_v2.json")
    hdrs = {"host": "api.lucid.test", "user-agent": "pytest", **(headers or {})}
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    if isinstance(body, dict | list):
        body = json.dumps(body)
        hdrs.setdefault("content-type", "application/json")
    event["routeKey"] = route_key or f"{method} {path}"
    event["rawPath"] = path
    event["rawQueryString"] = query
    event["headers"] = hdrs
    event.pop("cookies", None)
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    else:
        event.pop("queryStringParameters", None)
    if path_parameters:
        event["pathParameters"] = path_parameters
    else:
        event.pop("pathParameters", None)
    context = event["requestContext"]
    context["routeKey"] = event["routeKey"]
    context["requestId"] = uuid.uuid4().hex[:16]
    context["http"].update(method=method, path=path, sourceIp=source_ip, userAgent="pytest")
    if authorizer is not None:
        context["authorizer"] = {"lambda": authorizer}
    else:
        context.pop("authorizer", None)
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    elif isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body
        event["isBase64Encoded"] = False
    return event


def query_string(params: dict[str, str]) -> str:
    """`params` encoded as a raw query string."""
    return urlencode(params)


@dataclass(frozen=True)
class Reply:
    """A function's answer: status, lower-cased headers and the JSON body (None when empty)."""

    status: int
    headers: dict[str, str]
    body: Any


def reply_from(result: dict[str, Any]) -> Reply:
    """The `Reply` of a Lambda result in payload 2.0 format."""
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    text = result.get("body") or ""
    return Reply(result["statusCode"], headers, json.loads(text) if text else None)


def lambda_context(function: str) -> LambdaContext:
    """The context object Lambda passes with each invocation of `function` (the edge's)."""
    return LambdaContext(function, 512, 29)
