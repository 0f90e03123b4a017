"""CORS as the real template asks (the seed's origins, with credentials) and `Vary: Origin` on
every answer whose CORS headers depend on the request's Origin."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid_edge import logs, server
from lucid_edge.cors import Cors
from lucid_edge.model import CorsSpec
from tests.edge.harness import FIXTURES, RunningEdge, running_edge

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


def test_vary_origin_leaves_the_functions_other_headers_in_place() -> None:
    cors = Cors(CorsSpec(allow_origins=SEED_ORIGINS))
    function = [(b"content-type", b"text/plain"), (b"vary", b"Accept"), (b"etag", b'"1"')]
    assert cors.apply(function, None) == [
        (b"content-type", b"text/plain"),
        (b"vary", b"Accept, Origin"),
        (b"etag", b'"1"'),
    ]


def test_a_wildcard_only_configuration_does_not_vary() -> None:
    cors = Cors(CorsSpec(allow_origins=("*",)))
    assert cors.apply([], b"https://any.example") == [(b"access-control-allow-origin", b"*")]
    assert cors.apply([], None) == []  # not a CORS request: no CORS headers
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


def _default_route_template(tmp_path: Path) -> Path:
    # CORS and only a $default route, served by the fixtures' echo function
    (tmp_path / "functions").symlink_to(FIXTURES / "functions")
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Api:\n"
        "    Type: AWS::Serverless::HttpApi\n"
        "    Properties: {CorsConfiguration: {AllowOrigins: ['https://app.example']}}\n"
        "  Echo:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      Runtime: python3.11\n"
        "      CodeUri: functions/echo/\n"
        "      Handler: app.handler\n"
        "      Events: {All: {Type: HttpApi, Properties: {ApiId: !Ref Api}}}\n"
    )
    return template


def test_a_default_route_receives_the_preflight(tmp_path: Path) -> None:
    # GIVEN a $default route: it "catches requests for all methods and routes that you haven't
    # explicitly defined, including OPTIONS requests" (http-api-cors.html)
    template = _default_route_template(tmp_path)
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    # (it answers every path: the edge serves no metrics endpoint beside it)
    with running_edge(template, metrics_path="") as running:
        # WHEN a browser preflights any path
        response = running.client.options("/anything", headers=headers)
        metrics = running.client.get("/metrics")
    # THEN even /metrics is the route's
    assert metrics.json()["event"]["routeKey"] == "$default"
    # and the $default route's function answers the preflight, not API Gateway's CORS
    assert response.status_code == 200
    assert response.json()["event"]["routeKey"] == "$default"
    assert response.json()["event"]["requestContext"]["http"]["method"] == "OPTIONS"


def test_workers_keep_an_empty_metrics_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN `lucid serve --metrics-path ''`: the workers get it through their environment
    monkeypatch.setenv(server.ENV_TEMPLATE, str(_default_route_template(tmp_path)))
    monkeypatch.setenv(server.ENV_METRICS_PATH, "")
    monkeypatch.setattr(gc, "freeze", lambda: None)
    monkeypatch.setattr(logs, "configure", lambda: None)
    # WHEN a worker builds its edge THEN it serves no metrics endpoint (not the default one)
    edge = server.create_app()
    try:
        assert edge.metrics_path == ""
    finally:
        edge.close()


def test_every_field_of_a_configuration_reaches_the_answers_as_configured() -> None:
    # GIVEN a CorsConfiguration with every field, credentials off and MaxAge 0 (no caching)
    cors = Cors(
        CorsSpec(
            allow_origins=("https://app.example", "https://admin.example"),
            allow_methods=("GET", "POST"),
            allow_headers=("authorization", "content-type"),
            expose_headers=("location", "x-request-id"),
            max_age=0,
        )
    )
    origin = b"https://admin.example"
    # THEN a preflight names the origin, the methods, headers and max-age, and varies by Origin
    assert cors.preflight_headers(origin) == [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", b"GET,POST"),
        (b"access-control-allow-headers", b"authorization,content-type"),
        (b"access-control-max-age", b"0"),
        (b"vary", b"Origin"),
    ]
    # AND an actual answer keeps the function's own headers but not its CORS ones, and names
    # the origin and what the page may read; no credentials header anywhere (not configured)
    function = [
        (b"content-type", b"text/plain"),
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-credentials", b"true"),
    ]
    assert cors.apply(list(function), origin) == [
        (b"content-type", b"text/plain"),
        (b"vary", b"Origin"),
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", b"location,x-request-id"),
    ]
    # AND without an Origin, or from another one, only the Vary is added
    plain = [(b"content-type", b"text/plain"), (b"vary", b"Origin")]
    assert cors.apply(list(function), None) == plain
    assert cors.apply(list(function), b"https://evil.example") == plain
    assert cors.preflight_headers(b"https://evil.example") == [(b"vary", b"Origin")]
    # (an origin that merely begins like an allowed one is another origin)
    assert cors.apply([], b"https://admin.example.evil") == [(b"vary", b"Origin")]
