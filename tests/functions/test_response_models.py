"""Every route of our functions declares the model of the body it answers with, so FastAPI's
OpenAPI describes each response. (The proxy's bodies are the backends', not ours.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils.functions import load_module

OWN_BODIES = ["auth", "users", "sessions", "meta"]


def _operations(group: str) -> list[tuple[str, str, dict[str, Any]]]:
    paths = load_module(group).app.openapi()["paths"]
    return [(path, method, op) for path, ops in paths.items() for method, op in ops.items()]


def _success(operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next((s, r) for s, r in operation["responses"].items() if s.startswith("2"))


@pytest.mark.parametrize("group", OWN_BODIES)
def test_every_route_with_a_body_declares_its_model(group: str) -> None:
    operations = _operations(group)
    assert operations
    for path, method, operation in operations:
        status, response = _success(operation)
        if status == "204":
            assert "content" not in response, f"{method} {path}"  # no body, nothing to describe
        elif "application/json" in response["content"]:  # not the API reference's page or files
            schema = response["content"]["application/json"]["schema"]
            assert "$ref" in schema, f"{group}: {method} {path} has no response model"


@pytest.mark.parametrize(
    ("group", "path", "method", "model"),
    [
        ("auth", "/auth/challenge", "post", "Challenge"),
        ("auth", "/auth/login", "post", "TokenPair"),
        ("auth", "/auth/verify", "post", "AccessClaims"),
        ("auth", "/auth/status", "get", "AuthStatus"),
        ("users", "/users/me", "get", "User"),
        ("users", "/users", "get", "UserPage"),
        ("sessions", "/sessions", "post", "Session"),
        ("sessions", "/sessions", "get", "SessionPage"),
        ("meta", "/meta/info", "get", "ServiceInfo"),
        ("meta", "/meta/health", "get", "Readiness"),
    ],
)
def test_openapi_names_each_response_model(group: str, path: str, method: str, model: str) -> None:
    document = load_module(group).app.openapi()
    _, response = _success(document["paths"][path][method])
    assert response["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{model}"
    }
    assert document["components"]["schemas"][model]["properties"]
