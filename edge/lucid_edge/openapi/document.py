"""The gateway's one OpenAPI 3.1 document: the template's routes, described by the functions.

For every route of the template, in template order, the document holds the operations the
route's function declares on that path (each method it serves for `ANY`, the one method
otherwise), under the template's path and parameter names (`/users/{id}`, not the function's
`/users/{user_id}`), with the route's authorizer as its security and API Gateway's own answers
beside the function's. What the template does not route is not described; a route whose function
declares nothing for it is an error, as API Gateway would deliver requests the function cannot
serve.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from lucid import __version__
from lucid_edge.loader import load_function_module
from lucid_edge.model import ApiSpec, RouteSpec, Template
from lucid_edge.openapi.gateway import (
    MESSAGE_SCHEMA,
    add_answer,
    gateway_answers,
    message_schema,
    security_scheme,
)

OPENAPI_VERSION = "3.1.0"
# The order OpenAPI lists an item's operations in.
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAMETER = re.compile(r"^\{([^}]+)\}$")

DESCRIPTION = """\
The public edge of the Lucid platform: an API Gateway HTTP API in front of Lambda functions.
This document is generated from `infra/template.yaml` (routes, authorizer, throttling) and the \
functions' FastAPI apps (`lucid openapi --write`); the meta function serves it at \
`/meta/openapi.json` and Swagger UI at `/meta/docs`.

**Signing in.** `POST /auth/challenge` with a TRON address returns a message; sign it with \
TronWeb `signMessageV2` and send it to `POST /auth/login` for an access token (a JWT, sent as \
`Authorization: Bearer ...`) and a single-use refresh token (`POST /auth/refresh`).

**Errors.** The functions answer every error as RFC 9457 `application/problem+json` (`type`, \
`title`, `status`, `detail`, `instance`; a 422 lists the invalid fields in `errors`). Answers \
API Gateway gives by itself (no route, no or refused token, throttled, oversized body, a failed \
function) are `application/json` `{"message": "<reason phrase>"}`.

**Headers.** Every answer of a function carries `X-Request-ID` (yours when well formed); every \
answer of a rate-limited function, whatever its status, adds `X-RateLimit-Limit/Remaining/Reset`, \
`RateLimit-Policy` and `RateLimit` (not API Gateway's own answers, nor the 503 of a limiter \
that cannot decide), and a 429 says `Retry-After`.

**Routes.** Each method listed on a path is a route of its own; a method a path does not list \
answers API Gateway's 404 `{"message": "Not Found"}`, as an unknown path does (unless the \
path's description names an `ANY` route). `{proxy+}` is API Gateway's greedy path variable: \
the rest of the path, slashes included.
"""
SERVER = {
    "url": "..",
    "description": "Relative to this document (`<base>/meta/openapi.json`): the same host and "
    "stage it was served from",
}


class OpenApiError(Exception):
    """The template and the functions' apps cannot be described as one API."""


def load_function_documents(template: Template) -> dict[str, dict[str, Any]]:
    """Each routed function's own OpenAPI document (`app.openapi()`), by logical id."""
    routed = {route.function for route in template.api.routes}
    documents: dict[str, dict[str, Any]] = {}
    for logical_id, spec in template.functions.items():
        if logical_id not in routed:
            continue
        module_name, _, attribute = spec.handler.rpartition(".")
        handler = getattr(load_function_module(spec.code_uri, module_name), attribute, None)
        # Mangum keeps the ASGI app as `.app`, and so does every ASGI wrapper around it
        # (lucid.web.security_headers): follow them down to the FastAPI app.
        app = getattr(handler, "app", None)
        while app is not None and not isinstance(app, FastAPI):
            app = getattr(app, "app", None)
        if not isinstance(app, FastAPI):
            raise OpenApiError(
                f"Resources.{logical_id}: its handler {spec.handler!r} does not wrap a FastAPI app"
            )
        documents[logical_id] = copy.deepcopy(app.openapi())
    return documents


def tag_of(logical_id: str) -> str:
    """The tag grouping a function's operations: `UsersFunction` -> `users`."""
    return logical_id.removesuffix("Function").lower()


def _parameters(path: str) -> list[str]:
    return [m.group(1) for segment in path.split("/") if (m := _PARAMETER.match(segment))]


def _shape(path: str) -> tuple[str, ...]:
    return tuple("{}" if _PARAMETER.match(s) else s for s in path.split("/"))


def _status_order(item: tuple[str, Any]) -> tuple[int, str]:
    status = item[0]
    return (int(status), "") if status.isdigit() else (1000, status)


def _served(
    route: RouteSpec, source: Mapping[str, Any], explicit: set[tuple[str, str]]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, the function's path, operation) of the function for `route`."""
    served = []
    for path, item in source.get("paths", {}).items():
        if _shape(path) != _shape(route.path):
            continue
        for method in METHODS:
            if method not in item:
                continue
            # API Gateway sends a method with a route of its own there, not to the ANY route.
            wanted = method.upper() == route.method or (
                route.method == "ANY" and (method.upper(), route.path) not in explicit
            )
            if wanted:
                served.append((method, path, item[method]))
    return served


def _path_description(route: RouteSpec) -> str | None:
    notes = []
    if route.method == "ANY":
        notes.append(
            f"Route `{route.route_key}`: API Gateway sends every method to {route.function}; "
            "a method not listed here answers 405 problem+json."
        )
    if route.path.endswith("+}"):
        notes.append(
            f"`{{{_parameters(route.path)[-1]}}}` is greedy: it takes the rest of the path, "
            "slashes included (at least one character)."
        )
    return " ".join(notes) or None


def _operation(
    operation: dict[str, Any], route: RouteSpec, function_path: str, api: ApiSpec
) -> dict[str, Any]:
    operation = copy.deepcopy(operation)
    names = dict(zip(_parameters(function_path), _parameters(route.path), strict=True))
    parameters = []
    reads_authorization = False
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "header" and parameter["name"].lower() == "authorization":
            # OpenAPI ignores an Authorization parameter: it is the security scheme's.
            reads_authorization = True
            continue
        if parameter["in"] == "path":
            parameter["name"] = names[parameter["name"]]
            parameter["schema"].pop("title", None)
            if parameter["name"].endswith("+"):
                parameter["description"] = "the rest of the path, slashes included"
        parameters.append(parameter)
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    if route.authorizer is not None:
        operation["security"] = [{route.authorizer: []}]
    elif reads_authorization:
        operation["security"] = [{}, *({name: []} for name in api.authorizers)]
    else:
        operation["security"] = []
    operation["tags"] = [tag_of(route.function)]
    operation["x-lucid-route"] = route.route_key
    operation["x-lucid-function"] = route.function
    responses = operation.setdefault("responses", {})
    for answer in gateway_answers(
        route, api, path_parameters=bool(names), body="requestBody" in operation
    ):
        add_answer(responses, answer)
    operation["responses"] = dict(sorted(responses.items(), key=_status_order))
    return operation


def _schemas(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    schemas: dict[str, Any] = {MESSAGE_SCHEMA: message_schema()}
    owners: dict[str, str] = {MESSAGE_SCHEMA: "API Gateway"}
    for logical_id, document in documents.items():
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise OpenApiError(
                    f"schema {name!r} differs between {owners[name]} and {logical_id}: "
                    "give one of the models another name"
                )
            schemas[name], owners[name] = schema, owners.get(name, logical_id)
    return dict(sorted(schemas.items()))


def _shared_headers(paths: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Move each header described identically everywhere it appears into `components.headers`
    (`X-Request-ID`, or `X-Request-ID.optional` where API Gateway may answer instead)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in paths.values():
        for method in METHODS:
            for response in item.get(method, {}).get("responses", {}).values():
                for name, header in response.get("headers", {}).items():
                    key = name if header.get("required") else f"{name}.optional"
                    found.setdefault(key, []).append(header)
    shared = {
        key: headers[0]
        for key, headers in sorted(found.items())
        if len(headers) > 1 and all(h == headers[0] for h in headers)
    }
    for item in paths.values():
        for method in METHODS:
            for response in item.get(method, {}).get("responses", {}).values():
                for name, header in response.get("headers", {}).items():
                    key = name if header.get("required") else f"{name}.optional"
                    if key in shared:
                        response["headers"][name] = {"$ref": f"#/components/headers/{key}"}
    return shared


def _shared_responses(paths: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Move each response that several operations give word for word into
    `components.responses`, named after its status (`TooManyRequests`, `NotFound.2`, ...)."""
    variants: dict[str, list[str]] = {}
    uses: dict[tuple[str, str], int] = {}
    for item in paths.values():
        for method in METHODS:
            for status, response in item.get(method, {}).get("responses", {}).items():
                if status[:1] == "2":
                    continue  # a success is the operation's own: its model stays in sight
                text = json.dumps(response, sort_keys=True)
                if (status, text) not in uses:
                    variants.setdefault(status, []).append(text)
                uses[status, text] = uses.get((status, text), 0) + 1
    names: dict[tuple[str, str], str] = {}
    for status, texts in variants.items():
        reason = HTTPStatus(int(status)).phrase if status.isdigit() else status.capitalize()
        base = "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", reason))
        repeated = [text for text in texts if uses[status, text] > 1]
        for index, text in enumerate(repeated, start=1):
            names[status, text] = base if len(repeated) == 1 else f"{base}.{index}"
    for item in paths.values():
        for method in METHODS:
            responses = item.get(method, {}).get("responses", {})
            for status, response in responses.items():
                name = names.get((status, json.dumps(response, sort_keys=True)))
                if name is not None:
                    responses[status] = {"$ref": f"#/components/responses/{name}"}
    return {name: json.loads(text) for (_, text), name in sorted(names.items(), key=_by_name)}


def _by_name(item: tuple[tuple[str, str], str]) -> str:
    return item[1]


def _check_operation_ids(paths: Mapping[str, Mapping[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for path, item in paths.items():
        for method in METHODS:
            if method not in item:
                continue
            where = f"{method.upper()} {path}"
            operation_id = item[method].get("operationId")
            if operation_id in seen:
                raise OpenApiError(
                    f"operationId {operation_id!r} of {where} is also {seen[operation_id]}'s"
                )
            seen[operation_id] = where


def build_document(
    template: Template, documents: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The OpenAPI document of everything `template` routes (functions' `documents` by id)."""
    documents = load_function_documents(template) if documents is None else documents
    api = template.api
    explicit = {(r.method, r.path) for r in api.routes if r.method != "ANY"}
    paths: dict[str, dict[str, Any]] = {}
    for route in api.routes:
        served = _served(route, documents.get(route.function, {}), explicit)
        if not served:
            raise OpenApiError(
                f"route {route.route_key!r}: {route.function} declares no operation for it"
            )
        item = paths.setdefault(route.path, {})
        description = _path_description(route)
        if description is not None:
            item["description"] = description
        for method, function_path, operation in served:
            item[method] = _operation(operation, route, function_path, api)
    _check_operation_ids(paths)
    headers = _shared_headers(paths)
    responses = _shared_responses(paths)
    routed = dict.fromkeys(route.function for route in api.routes)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Lucid API Gateway",
            "version": __version__,
            "summary": "TRON wallet sign-in, users, sessions and the backend clusters' APIs",
            "description": DESCRIPTION,
        },
        "servers": [SERVER],
        "tags": [
            {"name": tag_of(logical_id), "description": f"Served by {logical_id}"}
            for logical_id in routed
        ],
        "paths": paths,
        "components": {
            "schemas": _schemas({fid: documents[fid] for fid in routed}),
            "responses": responses,
            "headers": headers,
            "securitySchemes": {
                name: security_scheme(authorizer) for name, authorizer in api.authorizers.items()
            },
        },
    }


def unserved_operations(
    template: Template, documents: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Operations a function declares that no route of the template sends it (dead code)."""
    routes = template.api.routes
    explicit = {(r.method, r.path) for r in routes if r.method != "ANY"}
    served = {
        (route.function, method, path)
        for route in routes
        for method, path, _ in _served(route, documents.get(route.function, {}), explicit)
    }
    return [
        f"{logical_id}: {method.upper()} {path}"
        for logical_id, document in documents.items()
        for path, item in document.get("paths", {}).items()
        for method in METHODS
        if method in item and (logical_id, method, path) not in served
    ]
