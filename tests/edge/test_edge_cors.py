"""CORS as the real template asks (the seed's origins, with credentials) and `Vary: Origin` on
every answer whose CORS headers depend on the request's Origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid_edge.cors import Cors
from lucid_edge.model import CorsSpec
from tests.edge.harness import RunningEdge, running_edge

REAL_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
SEED_ORIGINS = ("http://localhost:3000", "https://lucid.onion")


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningEdge]:
    with running_edge(REAL_TEMPLATE) as running:
        yield running


@pytest.mark.parametrize("origin", SEED_ORIGINS)
def test_the_seed_origins_get_credentialed_cors(gateway: RunningEdge, origin: str) -> None:
    # WHEN a browser on one of the seed's origins preflights, then calls
    preflight = gateway.client.options(
        "/users/me",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    actual = gateway.client.get("/health", headers={"Origin": origin})
    # THEN both name that origin (not *) and allow credentials, and say they vary by Origin
    for response in (preflight, actual):
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["vary"] == "Origin"
    assert preflight.status_code == 204
    assert "PATCH" in preflight.headers["access-control-allow-methods"].split(",")
    assert "location" in actual.headers["access-control-expose-headers"].split(",")


def test_other_origins_and_plain_requests_get_no_cors_but_still_vary(
    gateway: RunningEdge,
) -> None:
    evil = gateway.client.get("/health", headers={"Origin": "https://evil.example"})
    plain = gateway.client.get("/health")
    for response in (evil, plain):
        assert response.status_code == 200
        assert not [h for h in response.headers if h.startswith("access-control-")]
        # a shared cache must not replay this answer to an allowed origin
        assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize(
    ("function_headers", "vary"),
    [
        ([], b"Origin"),
        ([(b"vary", b"Accept-Encoding")], b"Accept-Encoding, Origin"),
        ([(b"Vary", b"origin")], b"origin"),
        ([(b"vary", b"*")], b"*"),
    ],
)
def test_vary_origin_joins_what_the_function_varies_on(
    function_headers: list[tuple[bytes, bytes]], vary: bytes
) -> None:
    cors = Cors(CorsSpec(allow_origins=SEED_ORIGINS))
    headers = cors.apply(list(function_headers), b"https://lucid.onion")
    assert [v for n, v in headers if n.lower() == b"vary"] == [vary]


def test_a_wildcard_only_configuration_does_not_vary() -> None:
    cors = Cors(CorsSpec(allow_origins=("*",)))
    assert cors.apply([], b"https://any.example") == [(b"access-control-allow-origin", b"*")]
    assert cors.preflight_headers(b"https://any.example") == [
        (b"access-control-allow-origin", b"*")
    ]


def test_api_gateway_answers_the_preflight_of_every_function_route(gateway: RunningEdge) -> None:
    # GIVEN every route of the real template outside the backend proxy, with its path filled in
    routes = [r for r in gateway.app.template.api.routes if r.function != "ProxyFunction"]
    headers = {"Origin": SEED_ORIGINS[0], "Access-Control-Request-Method": "PATCH"}
    for route in routes:
        path = route.path.replace("{id}", "u-1").replace("{asset}", "a.js")
        # WHEN a browser preflights it (no Authorization: browsers never send it there)
        response = gateway.client.options(path, headers=headers)
        # THEN API Gateway's own 204 answers it: no ANY route takes the OPTIONS to an authorizer
        assert response.status_code == 204, route.route_key
        assert response.headers["access-control-allow-origin"] == SEED_ORIGINS[0]


def test_a_scheme_wildcard_allows_every_origin_of_that_scheme() -> None:
    # GIVEN AllowOrigins [https://*], "allow any origin that begins with https://"
    # (http-api-cors.html, allowOrigins)
    cors = Cors(CorsSpec(allow_origins=("https://*",), allow_methods=("GET",)))
    # THEN an https origin is echoed, in preflights and actual answers alike; http is not
    allowed = b"https://app.example"
    assert (b"access-control-allow-origin", allowed) in cors.preflight_headers(allowed)
    assert (b"access-control-allow-origin", allowed) in cors.apply([], allowed)
    assert cors.apply([], b"http://app.example") == [(b"vary", b"Origin")]
    assert cors.apply([], b"https://") == [(b"vary", b"Origin")]
