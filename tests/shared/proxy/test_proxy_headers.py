"""Header hygiene towards the backend and back (unit, no network)."""

from __future__ import annotations

import pytest

from lucid.errors import BadRequestError
from lucid.identity import CallerIdentity, Role
from lucid.proxy.headers import public_locations, request_headers, response_headers
from lucid.proxy.routing import parse_url

CALLER = CallerIdentity(
    user_id="u-1", address="TXyz", role=Role.USER, tier="authenticated", jti="j"
)


def names(headers: list[tuple[str, str]]) -> set[str]:
    return {name.lower() for name, _ in headers}


def test_hop_by_hop_credentials_and_forged_identity_never_reach_the_backend() -> None:
    # GIVEN a request carrying hop-by-hop headers, credentials and forged identity headers
    incoming = [
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("X-Secret-Hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic abc"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "Expires"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Authorization", "Bearer secret-token"),
        ("Cookie", "session=abc"),
        ("X-Lucid-User-Id", "admin-forged"),
        ("x-lucid-role", "admin"),
        ("X-Lucid-Anything", "x"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("Forwarded", "for=10.0.0.1"),
        ("X-Real-IP", "10.0.0.1"),
        ("X-Request-ID", "client-chosen"),
        ("Host", "api.lucid.test"),
        ("Content-Length", "999"),
        ("Accept", "application/json"),
        ("X-Custom", "kept"),
        ("X-Note", "x-custom"),  # names another header, but only Connection's value drops one
    ]
    # WHEN the proxy builds the backend's headers
    out = request_headers(incoming, request_id="req-1", source_ip="203.0.113.9", caller=CALLER)
    # THEN only end-to-end headers survive, plus what the gateway vouches for
    assert dict(out) == {
        "accept": "application/json",
        "x-custom": "kept",
        "x-note": "x-custom",
        "X-Request-ID": "req-1",
        "X-Forwarded-For": "203.0.113.9",
        "X-Lucid-User-Id": "u-1",
        "X-Lucid-Role": "user",
    }


def test_anonymous_caller_gets_no_identity_headers() -> None:
    out = request_headers(
        [("X-Lucid-User-Id", "forged")], request_id="r", source_ip="1.2.3.4", caller=None
    )
    assert "x-lucid-user-id" not in names(out)
    assert "x-lucid-role" not in names(out)


def test_header_value_with_line_break_is_refused() -> None:
    with pytest.raises(BadRequestError):
        request_headers([("X-A", "1\r\nX-B: 2")], request_id="r", source_ip="1.2.3.4", caller=None)


def test_response_keeps_end_to_end_headers_and_drops_hop_by_hop() -> None:
    incoming = [
        ("Content-Type", "application/vnd.chain+json"),
        ("Content-Encoding", "gzip"),
        ("Content-Length", "10"),
        ("Connection", "close, X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Request-ID", "backend-id"),
        ("ETag", '"v1"'),
    ]
    out = response_headers(incoming)
    assert out == [
        ("Content-Type", "application/vnd.chain+json"),
        ("Content-Encoding", "gzip"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("ETag", '"v1"'),
    ]
    assert ("Content-Length", "10") in response_headers(incoming, keep_length=True)


def test_response_drops_the_backends_fingerprint_and_what_the_gateway_says_itself() -> None:
    # GIVEN a backend answer naming its software and claiming gateway-owned headers
    incoming = [
        ("Content-Type", "application/json"),
        ("Server", "nginx/1.25.3"),
        ("X-Powered-By", "Express"),
        ("X-AspNet-Version", "4.0.30319"),
        ("X-AspNetMvc-Version", "5.2"),
        ("Via", "1.1 internal-lb"),
        ("X-Content-Type-Options", "sniff-away"),
        ("X-RateLimit-Remaining", "999999"),
        ("RateLimit", '"backend";r=1;t=1'),
        ("RateLimit-Policy", '"backend";q=1;w=1'),
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Credentials", "true"),
        ("X-Lucid-Role", "admin"),
        ("X-Amzn-Remapped-Authorization", "x"),
        ("Apigw-Requestid", "forged"),
        ("Cache-Control", "max-age=5"),
        ("Retry-After", "3"),
        ("Location", "/chain/blocks/7"),
    ]
    # THEN the caller sees what describes the content, and nothing else
    assert response_headers(incoming) == [
        ("Content-Type", "application/json"),
        ("Cache-Control", "max-age=5"),
        ("Retry-After", "3"),
        ("Location", "/chain/blocks/7"),
    ]


@pytest.mark.parametrize(
    ("base", "location", "public"),
    [
        ("http://10.0.3.4:8080", "http://10.0.3.4:8080/nodes/9?x=1#top", "/nodes/9?x=1#top"),
        ("http://10.0.3.4:8080", "/nodes/9", "/nodes/9"),
        ("http://10.0.3.4:8080/api/", "http://10.0.3.4:8080/api?x=1", "/?x=1"),
        # the backend's origin outside its base path: no public path to give (left alone)
        ("http://10.0.3.4:8080/api", "http://10.0.3.4:8080/other", "http://10.0.3.4:8080/other"),
        ("http://10.0.3.4:8080/api", "/apiary/x", "/apiary/x"),
        # another port, scheme or host is not the backend
        ("http://10.0.3.4:8080", "http://10.0.3.4:9090/x", "http://10.0.3.4:9090/x"),
        ("http://10.0.3.4:8080", "https://10.0.3.4:8080/x", "https://10.0.3.4:8080/x"),
        # protocol-relative, request-relative and unparseable values stay as sent
        ("http://10.0.3.4:8080", "//10.0.3.4:8080/x", "//10.0.3.4:8080/x"),
        ("http://10.0.3.4:8080", "next?page=2", "next?page=2"),
        ("http://10.0.3.4:8080", "https://[::1", "https://[::1"),
    ],
)
def test_a_location_under_the_backends_base_url_becomes_the_public_path(
    base: str, location: str, public: str
) -> None:
    headers = [("Location", location), ("ETag", '"1"')]
    assert public_locations(headers, parse_url(base)) == [("Location", public), ("ETag", '"1"')]
