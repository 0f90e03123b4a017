"""What a backend receives and what the caller gets back, through the real Mangum handler.

Identity headers as a WSGI backend reads them (CGI names, where `-` and `_` are one), and
answers whose Lambda result would not fit Lambda's 6 MB response quota.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from lucid.proxy import Proxy
from tests.functions.proxy.test_proxy_function import USER, invoke
from tests.shared.proxy.conftest import proxy_settings

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
