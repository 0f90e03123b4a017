"""Route selection as API Gateway does it: most specific first."""

from __future__ import annotations

import pytest

from lucid_edge.model import RouteSpec
from lucid_edge.routing import RouteTable


def _route(key: str) -> RouteSpec:
    method, _, path = key.partition(" ")
    if key == "$default":
        method, path = "ANY", "$default"
    return RouteSpec(method, path, "Fn", None, None, 1.0)


TABLE = RouteTable(
    _route(k)
    for k in [
        "GET /pets/dog/1",
        "GET /pets/dog/{id}",
        "GET /pets/{proxy+}",
        "ANY /pets/{proxy+}",
        "ANY /users/me",
        "GET /users/{id}",
        "PUT /users/{id}/role",
        "ANY /{proxy+}",
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "route_key", "params"),
    [
        ("GET", "/pets/dog/1", "GET /pets/dog/1", None),
        ("GET", "/pets/dog/2", "GET /pets/dog/{id}", {"id": "2"}),
        ("GET", "/pets/cat/1", "GET /pets/{proxy+}", {"proxy": "cat/1"}),
        ("POST", "/pets/dog/1", "ANY /pets/{proxy+}", {"proxy": "dog/1"}),
        ("DELETE", "/users/me", "ANY /users/me", None),
        ("GET", "/users/me", "ANY /users/me", None),
        ("GET", "/users/u-7", "GET /users/{id}", {"id": "u-7"}),
        ("PUT", "/users/u-7/role", "PUT /users/{id}/role", {"id": "u-7"}),
        ("POST", "/users/u-7", "ANY /{proxy+}", {"proxy": "users/u-7"}),
        ("GET", "/a/b/c", "ANY /{proxy+}", {"proxy": "a/b/c"}),
    ],
)
def test_most_specific_route_wins(
    method: str, path: str, route_key: str, params: dict[str, str] | None
) -> None:
    match = TABLE.match(method, path)
    assert match is not None
    assert match.route.route_key == route_key
    assert match.path_parameters == params


def test_no_route_and_default_route() -> None:
    table = RouteTable([_route("GET /health"), _route("GET /items/{id}")])
    assert table.match("GET", "/nothing") is None
    assert table.match("POST", "/health") is None
    assert table.match("GET", "/items/1/2") is None
    assert table.match("GET", "/health/") is None
    with_default = RouteTable([_route("GET /health"), _route("$default")])
    match = with_default.match("POST", "/anything")
    assert match is not None
    assert match.route.route_key == "$default"
    assert [r.route_key for r in with_default.routes] == ["GET /health", "$default"]


def test_a_greedy_variable_takes_decoded_control_characters_like_a_segment_does() -> None:
    # The proxy must see "/chain/a\r\nb" to refuse it with a precise 400, not the edge a 404.
    table = RouteTable([_route("ANY /chain/{proxy+}")])
    match = table.match("GET", "/chain/a\r\nb")
    assert match is not None
    assert match.path_parameters == {"proxy": "a\r\nb"}
