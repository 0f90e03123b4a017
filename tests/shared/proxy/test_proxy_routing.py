"""Which backend a path reaches, and which paths never leave the gateway (unit, no network)."""

from __future__ import annotations

import pytest

from lucid.config import Settings
from lucid.errors import NotFoundError, ServiceUnavailableError, UnsafePathError
from lucid.proxy import ROUTES, backend_for, check_remainder
from lucid.proxy.routing import check_query, parse_url, upstream_url

TRAVERSALS = [
    "..",
    "../admin",
    "blocks/../../admin",
    "blocks/..",
    "./info",
    "%2e%2e/admin",
    "%2E%2E/admin",
    "%2e%2E/admin",
    ".%2e/admin",
    "%252e%252e/admin",
    "%25252e%25252e/admin",
    "%2e%2e%2fadmin",
    "%2e%2e%5cadmin",
    "\uff0e\uff0e/admin",
    "/evil.example/x",
    "blocks//x",
    "%2f%2fevil.example",
    "http://evil.example/x",
    "https:%2F%2Fevil.example",
    "..\\admin",
    "blocks\\..\\admin",
    "%5c%5cevil.example",
    "info\r\nX-Injected: 1",
    "info%0d%0aX-Injected:%201",
    "info%250d%250a",
    "info\x00.json",
    "info%00",
    "%c0%ae%c0%ae/admin",
    "%2525252525252e",
    # path parameters: Tomcat and Jetty drop ";..." from a segment, then resolve dot segments
    "..;/admin",
    "blocks/..;/..;/admin",
    "..;jsessionid=x/admin",
    ".;/admin",
    "%2e%2e%3b/admin",
    "blocks/;x/admin",
    # fullwidth forms a folding backend reads as ASCII (NFKC; Windows best-fit mapping)
    "..\uff3cadmin",
    "blocks\uff3c..\uff3cadmin",
    "http\uff1a\uff0f\uff0fevil.example/x",
    "\uff05\uff12\uff45\uff05\uff12\uff45/admin",
    "..\uff1b/admin",
]


@pytest.mark.parametrize("remainder", TRAVERSALS)
def test_traversal_and_injection_attempts_are_refused(remainder: str) -> None:
    with pytest.raises(UnsafePathError):
        check_remainder(remainder)


@pytest.mark.parametrize(
    "remainder",
    [
        "info",
        "blocks/7",
        "blocks/7/",
        "tx/abc:1",
        "a%20b",
        "names/caf\u00e9",
        "v1.2/x..y",
        "",
        "m/a;v=1",
        "m/a..;b",
    ],
)
def test_ordinary_paths_pass(remainder: str) -> None:
    check_remainder(remainder)


def test_query_with_control_characters_is_refused() -> None:
    with pytest.raises(UnsafePathError):
        check_query(b"a=1\r\nHost: evil")
    for control in (b"\x00", b"\x1f", b"\x7f"):  # NUL, the last C0 control, DEL
        with pytest.raises(UnsafePathError):
            check_query(b"a=" + control)
    check_query(b"a=1&b=%0d%0a")  # encoded, it is data for the backend
    check_query(b"a= ~\x80")  # space, the last printable and a high byte are not controls


def test_manifests_and_trust_go_to_the_session_cluster() -> None:
    assert {p: b.setting for p, b in ROUTES.items()} == {
        "chain": "BLOCKCHAIN_SERVICE_URL",
        "manifests": "SESSION_SERVICE_URL",
        "trust": "SESSION_SERVICE_URL",
        "nodes": "NODE_SERVICE_URL",
    }


def test_unknown_prefix_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        backend_for("admin")


def test_unset_backend_is_503_naming_the_setting() -> None:
    with pytest.raises(ServiceUnavailableError) as raised:
        backend_for("nodes").base_url(Settings(NODE_SERVICE_URL=""))
    assert "NODE_SERVICE_URL" in raised.value.detail
    assert raised.value.extensions["setting"] == "NODE_SERVICE_URL"


@pytest.mark.parametrize(
    ("base", "path", "query", "expected"),
    [
        ("http://chain:8084", "/chain/info", b"", "http://chain:8084/chain/info"),
        (
            "http://chain:8084/api/",
            "/chain/b/7",
            b"x=1&y=2",
            "http://chain:8084/api/chain/b/7?x=1&y=2",
        ),
        ("http://s:1", "/trust/a b?#", b"q=%20#", "http://s:1/trust/a%20b%3F%23?q=%20%23"),
        ("http://s:1", "/manifests/@evil.example", b"", "http://s:1/manifests/@evil.example"),
    ],
)
def test_upstream_url_keeps_the_configured_host(
    base: str, path: str, query: bytes, expected: str
) -> None:
    url = upstream_url(parse_url(base), path, query)
    assert str(url) == expected
    assert url.origin == parse_url(base).origin


def test_a_backend_url_is_compared_and_sent_in_its_normal_form() -> None:
    # GIVEN a backend URL with an upper-case scheme, an internationalised host, the default port
    url = parse_url("HTTP://Bücher.Example:80/api")
    # THEN it is the same server as its plain form (as httpx's URL had it), the host in ASCII
    assert url.origin == ("http", "xn--bcher-kva.example", None)
    assert url.origin == parse_url("http://xn--bcher-kva.example/api").origin
    assert str(upstream_url(url, "/chain/x", b"")) == "http://xn--bcher-kva.example/api/chain/x"
    # ...an IPv6 host keeps its brackets where it is written (the Host header), not where dialled
    v6 = parse_url("http://[::1]:8080")
    assert (v6.host, v6.netloc) == ("::1", "[::1]:8080")
    # ...and a port that is no port is refused
    with pytest.raises(ValueError, match="Port"):
        parse_url("http://chain:notaport")


def test_a_path_encoded_three_times_passes_and_four_times_is_refused() -> None:
    # Every layer is checked; past the fourth decoding the last one would go unchecked
    check_remainder("a%252520b")
    with pytest.raises(UnsafePathError, match="too many times"):
        check_remainder("a%25252520b")


def test_an_https_backend_on_its_default_port_is_sent_without_it() -> None:
    # GIVEN https on 443 THEN the Host header (netloc) and the URL carry no port, as httpx sent
    url = parse_url("https://Chain.Internal:443/api")
    assert (url.origin, url.netloc) == (("https", "chain.internal", None), "chain.internal")
    assert str(upstream_url(url, "/chain/x", b"")) == "https://chain.internal/api/chain/x"
    assert parse_url("https://chain:8443").netloc == "chain:8443"


def test_a_query_reaches_the_backend_byte_for_byte_but_for_a_fragment_mark() -> None:
    # Every printable ASCII character is sent as the client wrote it ("#" would end the URL)
    printable = bytes(range(0x21, 0x7F)).replace(b"#", b"")
    url = upstream_url(parse_url("http://s:1"), "/chain/x", printable + b"#")
    assert url.target == "/chain/x?" + printable.decode() + "%23"


@pytest.mark.parametrize(
    ("remainder", "reason"),
    [
        ("http://evil.example/x", "absolute URL"),
        ("https:%2F%2Fevil.example", "absolute URL"),
        ("blocks//x", "empty segment"),
        ("a/../b", "dot segment"),
        ("a\\b", "backslash"),
        ("a%0d%0ab", "control character"),
    ],
)
def test_a_refused_path_says_why(remainder: str, reason: str) -> None:
    # The problem's detail names what was refused (the caller's only hint at a typo)
    with pytest.raises(UnsafePathError, match=reason):
        check_remainder(remainder)
