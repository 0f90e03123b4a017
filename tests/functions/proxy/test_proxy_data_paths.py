"""What a backend receives and what the caller gets back, through the real Mangum handler.

Identity headers as a WSGI backend reads them (CGI names, where `-` and `_` are one), and
answers whose Lambda result would not fit Lambda's 6 MB response quota.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from lucid.proxy import Proxy
from tests.functions.proxy.test_proxy_function import USER, invoke, problem
from tests.shared.proxy.conftest import proxy_settings
from tests.shared.proxy.proxy_backends import BackendServer, raw_backend, read_request_head
from tests.utils.events import http_event
from tests.utils.functions import load_handler

# Lambda's response quota: "Response payload size exceeded maximum allowed payload size
# (6291556 bytes)" (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
LAMBDA_RESULT_LIMIT = 6_291_556


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def wsgi_backend() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stdlib WSGI backend (wsgiref) answering each request with the environ it built."""
    seen: list[dict[str, str]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        headers = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        seen.append(headers)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(headers).encode()]

    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_wsgi_backend_reads_only_the_gateways_identity_whatever_the_header_spelling(
    wsgi_backend: tuple[str, list[dict[str, str]]],
    make_proxy: Callable[..., Proxy],
    use_proxy: Callable[[Proxy], None],
) -> None:
    # GIVEN a backend on WSGI, where `X_Lucid_User_Id` and `X-Lucid-User-Id` are the one
    # variable HTTP_X_LUCID_USER_ID (PEP 3333 takes CGI's names)
    url, seen = wsgi_backend
    use_proxy(make_proxy(proxy_settings(NODE_SERVICE_URL=url)))
    # WHEN a signed-in caller spells the gateway's headers with underscores
    status, _, _ = invoke(
        "GET",
        "/nodes/n-1",
        headers={
            "X_Lucid_User_Id": "victim-user",
            "x-lucid_role": "admin",
            "X_Forwarded_For": "10.0.0.1",
            "x_request_id": "forged",
            "X_Custom_Thing": "kept",
        },
        authorizer=USER,
    )
    # THEN the backend sees exactly the identity the authorizer vouched for, and nothing forged
    assert status == 200
    [environ] = seen
    assert environ["HTTP_X_LUCID_USER_ID"] == "u-42"
    assert environ["HTTP_X_LUCID_ROLE"] == "user"
    assert environ["HTTP_X_FORWARDED_FOR"] == "198.51.100.7"
    assert "forged" not in environ["HTTP_X_REQUEST_ID"]
    # AND headers of the caller's own keep reaching it
    assert environ["HTTP_X_CUSTOM_THING"] == "kept"


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        # 4.9 MB of binary: 6.5 MB once base64-encoded in the result
        ("application/octet-stream", bytes(range(256)) * (4_900_000 // 256)),
        # 2.2 MB of JSON text whose every character is written \u00e9 (ensure_ascii): 6.6 MB
        ("application/json", b'"' + "\u00e9".encode() * 1_100_000 + b'"'),
        # plain text just under 6 MiB: its own bytes fit, the result's other fields do not
        ("text/plain", b"x" * 6_291_400),
    ],
    ids=["binary", "escaped-text", "text-and-the-rest"],
)
def test_an_answer_the_lambda_result_cannot_carry_is_a_precise_502_not_a_bare_500(
    proxied: Proxy, backend: BackendServer, content_type: str, payload: bytes
) -> None:
    # GIVEN a backend answer under 6 MB whose encoding in the Lambda result is over Lambda's limit
    assert len(payload) < 6 * 1024 * 1024
    backend.mode, backend.status = "status", 200
    backend.content_type, backend.body = content_type, payload
    # WHEN a signed-in caller asks for it through the real handler
    result = load_handler("proxy")(
        http_event("GET", "/chain/blocks", route_key="ANY /chain/{proxy+}", authorizer=USER), None
    )
    # THEN the function's result is one Lambda accepts (else API Gateway would answer a bare 500),
    # and it says what happened: 502 problem+json
    assert len(json.dumps(result).encode()) <= LAMBDA_RESULT_LIMIT
    headers = {k.lower(): v for k, v in result["headers"].items()}
    detail = problem(502, headers, result["body"].encode())["detail"]
    assert "larger than a Lambda response can carry" in detail


def test_an_answer_that_fits_once_encoded_passes_untouched(
    proxied: Proxy, backend: BackendServer
) -> None:
    # GIVEN 4.5 MB of binary: 6.0 MB base64, within the limit
    payload = bytes(range(256)) * (4_500_000 // 256)
    backend.mode, backend.status = "status", 200
    backend.content_type, backend.body = "application/octet-stream", payload
    status, headers, body = invoke("GET", "/chain/blocks", authorizer=USER)
    assert (status, headers["content-type"], body) == (200, "application/octet-stream", payload)


@pytest.mark.parametrize(
    ("location", "public"),
    [
        ("{origin}/api/nodes/n-9?view=full", "/nodes/n-9?view=full"),  # the backend's own URL
        ("{origin}/api/nodes", "/nodes"),
        ("/api/nodes/n-9", "/nodes/n-9"),  # root-relative on the backend
        ("https://elsewhere.example/x", "https://elsewhere.example/x"),  # not the backend's
        ("n-9", "n-9"),  # relative to the request: already public
    ],
)
def test_a_location_naming_the_backend_is_given_as_the_gateways_path(
    backend: BackendServer,
    make_proxy: Callable[..., Proxy],
    use_proxy: Callable[[Proxy], None],
    location: str,
    public: str,
) -> None:
    # GIVEN a backend behind NODE_SERVICE_URL=<internal origin>/api that answers 201 with a
    # Location built from its own address (its Host is the internal one: the gateway sets it)
    base = f"{backend.url}/api"
    use_proxy(make_proxy(proxy_settings(NODE_SERVICE_URL=base)))
    backend.mode, backend.status = "status", 201
    backend.content_type, backend.body = "application/json", b"{}"
    backend.extra_headers = [
        ("Location", location.format(origin=backend.url)),
        ("Content-Location", location.format(origin=backend.url)),
    ]
    # WHEN a signed-in caller creates through the gateway
    status, headers, _ = invoke("POST", "/nodes", route_key="ANY /nodes", authorizer=USER)
    # THEN the caller never sees the internal origin, and can follow the link on the gateway
    assert status == 201
    assert headers["location"] == public
    assert headers["content-location"] == public


def test_non_ascii_header_values_pass_both_ways_instead_of_a_500(
    proxied: Proxy, backend: BackendServer
) -> None:
    # GIVEN a caller header in UTF-8 (API Gateway hands it over as text) and a backend that
    # answers with one UTF-8 and one Latin-1 header value (obs-text, RFC 9110 section 5.5)
    backend.mode, backend.status = "status", 200
    backend.content_type, backend.body = "application/json", b"{}"
    backend.extra_headers = [
        ("Content-Disposition", 'attachment; filename="caf\u00e9.txt"'),  # sent as byte E9
        ("X-Title", "caf\u00c3\u00a9"),  # the UTF-8 bytes C3 A9, as http.server sends Latin-1
    ]
    status, headers, _ = invoke(
        "GET", "/chain/blocks", headers={"X-Note": "na\u00efve \u65e5\u672c"}, authorizer=USER
    )
    # THEN the backend got the caller's bytes, and the caller the backend's values as text
    assert status == 200
    [seen] = backend.received
    assert seen.header("X-Note") == ["na\u00efve \u65e5\u672c".encode().decode("latin-1")]
    assert headers["x-title"] == "caf\u00e9"
    assert headers["content-disposition"] == 'attachment; filename="caf\u00e9.txt"'


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Note", "a\x0bb"),  # vertical tab: a control character
        ("X-Note", "a\x0cb"),  # form feed
        ("X-Note", "a\x01b"),
        ("X-Note", "a\x7fb"),  # DEL
        ("X Note", "v"),  # not a token (RFC 9110 section 5.1)
        ("X-(Note)", "v"),
    ],
)
def test_a_header_the_gateway_cannot_send_is_the_callers_400_not_the_backends_failure(
    proxied: Proxy, backend: BackendServer, name: str, value: str
) -> None:
    # GIVEN an anonymous caller on the public route, repeating a header that is not a valid
    # field (RFC 9110 section 5.5: no control character but HTAB; section 5.1: a name is a token)
    for _ in range(6):
        status, headers, body = invoke("GET", "/chain/info", headers={name: value})
        # THEN each is a 400 naming the header, and nothing reached the backend
        assert problem(400, headers, body)["detail"].startswith("the ")
        assert status == 400
    assert backend.connections == 0
    # AND the breaker did not count them against the backend: everyone else still gets through
    assert proxied.breakers["blockchain"].state == "closed"
    assert invoke("GET", "/chain/info")[0] == 200


def test_whitespace_around_a_header_value_is_not_part_of_it(
    proxied: Proxy, backend: BackendServer
) -> None:
    # GIVEN a value with leading and trailing whitespace (RFC 9110 section 5.5: not part of it)
    status, _, _ = invoke("GET", "/chain/info", headers={"X-Note": " \tspaced value\t "})
    # THEN the backend gets the value alone
    assert status == 200
    [seen] = backend.received
    assert seen.header("X-Note") == ["spaced value"]


@pytest.mark.parametrize("status", [b"600", b"999", b"599"])
def test_a_status_outside_100_to_599_is_a_502_counted_against_the_backend(
    make_proxy: Callable[..., Proxy], use_proxy: Callable[[Proxy], None], status: bytes
) -> None:
    # GIVEN a backend answering with a status HTTP does not have (RFC 9110 section 15: valid
    # codes are 100-599, and a client treats any other as a 5xx), or the last one it has
    def answer(connection: socket.socket) -> None:
        read_request_head(connection)
        connection.sendall(b"HTTP/1.1 " + status + b" Odd\r\nContent-Length: 2\r\n\r\nok")

    with raw_backend(answer) as url:
        proxy = make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=url))
        use_proxy(proxy)
        answered, headers, body = invoke("GET", "/chain/info")
    assert proxy.breakers["blockchain"]._window.counts() == (1, 1)
    if status == b"599":  # THEN 599 is the backend's own answer, passed on (a 5xx: counted)
        assert (answered, body) == (599, b"ok")
        return
    # THEN the caller gets a 502 naming it, never that status in the Lambda result
    assert "invalid status" in problem(502, headers, body)["detail"]
    assert answered == 502


def test_a_redirect_is_the_callers_to_follow_never_the_gateways(
    proxied: Proxy, backend: BackendServer
) -> None:
    # GIVEN a backend that redirects to another of its paths
    backend.mode, backend.status = "status", 302
    backend.extra_headers = [("Location", f"{backend.url}/chain/admin/keys")]
    # WHEN a caller asks for the public route
    status, headers, _ = invoke("GET", "/chain/info")
    # THEN the caller gets the redirect (as the gateway's path) and the backend one request
    assert status == 302
    assert headers["location"] == "/chain/admin/keys"
    assert [seen.path for seen in backend.received] == ["/chain/info"]
