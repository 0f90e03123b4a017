"""The proxy function through its real Mangum handler, payload 2.0 events, real backends."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from lucid.proxy import Proxy, get_proxy
from lucid.store.documents import new_id
from lucid_edge.local import free_port, in_memory_database
from tests.shared.proxy.conftest import proxy_settings
from tests.shared.proxy.proxy_backends import BackendServer
from tests.utils.datastore import database_for
from tests.utils.events import http_event
from tests.utils.functions import load_handler, load_module

USER = {
    "user_id": "u-42",
    "address": "TQx",
    "role": "user",
    "tier": "authenticated",
    "jti": "j1",
    "sid": "s-42",
}


class LambdaContext:
    """The part of the Lambda context object the proxy reads."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def invoke(
    method: str, path: str, *, context: Any = None, **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    if "route_key" not in kwargs and not (method == "GET" and path == "/chain/info"):
        kwargs["route_key"] = f"ANY /{path.split('/')[1]}/{{proxy+}}"
    result = load_handler("proxy")(http_event(method, path, **kwargs), context)
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    body = result.get("body", "")
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return result["statusCode"], headers, raw


def problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status
    return document


def test_anonymous_chain_info_reaches_the_blockchain(
    proxied: Proxy, backend: BackendServer
) -> None:
    # GIVEN an anonymous caller who forges identity and origin headers, and headers some
    # backend frameworks route or dispatch by instead of the request line (IIS URL Rewrite and
    # Symfony before CVE-2018-14773: X-Original-URL / X-Rewrite-URL; method-override middleware)
    overrides = {
        "X-Original-URL": "/chain/admin/keys",
        "X-Rewrite-URL": "/chain/admin/keys",
        "X-HTTP-Method-Override": "DELETE",
        "X-HTTP-Method": "DELETE",
        "X-Method-Override": "DELETE",
    }
    status, headers, body = invoke(
        "GET",
        "/chain/info",
        headers={
            "X-Lucid-User-Id": "admin",
            "X-Forwarded-For": "10.0.0.1",
            "X-Request-ID": "abc-1",
            **overrides,
        },
        source_ip="198.51.100.23",
    )
    # THEN the backend answers the request line the gateway checked, and saw only what the
    # gateway vouches for
    assert status == 200
    assert json.loads(body) == {"method": "GET", "path": "/chain/info"}
    [seen] = backend.received
    assert seen.header("X-Lucid-User-Id") == []
    assert all(seen.header(name) == [] for name in overrides)
    assert seen.header("X-Forwarded-For") == ["198.51.100.23"]
    assert seen.header("X-Request-ID") == ["abc-1"] == [headers["x-request-id"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/chain/blocks/1"),
        ("POST", "/chain/info"),
        ("DELETE", "/nodes/n-1"),
        ("PUT", "/manifests/m-1"),
        ("GET", "/trust/t-1"),
    ],
)
def test_protected_routes_without_authorizer_context_are_401(
    proxied: Proxy, backend: BackendServer, method: str, path: str
) -> None:
    _, headers, body = invoke(method, path)
    assert problem(401, headers, body)["title"] == "Unauthorized"
    assert backend.connections == 0


def test_signed_in_request_passes_with_identity_from_the_authorizer_only(
    proxied: Proxy, backend: BackendServer
) -> None:
    status, _, _ = invoke(
        "POST",
        "/manifests/m-1/entries",
        query="sign=1&x=%2F",
        headers={
            "Authorization": "Bearer eyJ.secret.token",
            "X-Lucid-Role": "admin",
            "X-Lucid-User-Id": "someone-else",
            "Connection": "X-Drop-Me",
            "X-Drop-Me": "1",
            "Content-Type": "application/json",
        },
        body={"entry": 1},
        authorizer=USER,
    )
    assert status == 200
    [seen] = backend.received
    assert (seen.method, seen.path) == ("POST", "/manifests/m-1/entries?sign=1&x=%2F")
    assert json.loads(seen.body) == {"entry": 1}
    assert seen.header("X-Lucid-User-Id") == ["u-42"]
    assert seen.header("X-Lucid-Role") == ["user"]
    for dropped in ("Authorization", "Cookie", "X-Drop-Me"):
        assert seen.header(dropped) == []


def test_the_backend_is_told_the_role_stored_now_not_the_tokens(
    proxied: Proxy, backend: BackendServer
) -> None:
    # GIVEN an admin token whose user is a plain user where roles are stored
    database = in_memory_database()
    admin_token = {**USER, "user_id": new_id(), "role": "admin", "tier": "admin"}
    database["users"].insert_one({"_id": admin_token["user_id"], "role": "user"})
    with database_for("proxy", database=database):
        status, _, _ = invoke("GET", "/nodes/n-1", authorizer=admin_token)
    # THEN the backend hears "user"
    assert status == 200
    assert backend.received[-1].header("X-Lucid-Role") == ["user"]


@pytest.mark.parametrize(
    "path",
    [
        "/chain/%2e%2e/admin",
        "/nodes/..%5cadmin",
        "/trust/a/../../x",
        "/chain//evil.example/x",
        "/manifests/%252e%252e/x",
        "/nodes/x%0d%0aHost:%20evil",
        "/chain/http://evil.example/",
        "/nodes/x\r\nHost: evil",
        "/trust/a\x00b",
        "/manifests/a\\..\\b",
    ],
)
def test_traversal_attempts_are_400_without_any_connection(
    proxied: Proxy, backend: BackendServer, path: str
) -> None:
    _, headers, body = invoke("GET", path, authorizer=USER)
    assert problem(400, headers, body)["type"].endswith("/unsafe-path")
    assert backend.connections == 0


@pytest.mark.parametrize(
    ("status", "content_type", "payload"),
    [
        (404, "application/problem+json", b'{"title":"no block"}'),
        (502, "application/octet-stream", bytes(range(256))),
    ],
)
def test_backend_errors_pass_through_untouched(
    proxied: Proxy, backend: BackendServer, status: int, content_type: str, payload: bytes
) -> None:
    backend.mode, backend.status, backend.content_type, backend.body = (
        "status",
        status,
        content_type,
        payload,
    )
    got, headers, body = invoke("GET", "/nodes/n-1", authorizer=USER)
    assert (got, headers["content-type"], body) == (status, content_type, payload)


def test_over_6_mb_is_502(proxied: Proxy, backend: BackendServer) -> None:
    backend.mode = "huge_chunked"
    _, headers, body = invoke("GET", "/chain/blocks", authorizer=USER)
    problem(502, headers, body)


def test_slow_backend_is_504_within_the_lambda_time_left(
    backend: BackendServer, make_proxy: Callable[..., Proxy], use_proxy: Callable[[Proxy], None]
) -> None:
    backend.mode, backend.delay = "slow", 1.5
    use_proxy(
        make_proxy(proxy_settings(BLOCKCHAIN_SERVICE_URL=backend.url, PROXY_READ_TIMEOUT_SECONDS=5))
    )
    started = time.monotonic()
    _, headers, body = invoke("GET", "/chain/info", context=LambdaContext(700))
    assert time.monotonic() - started < 0.7
    problem(504, headers, body)


def test_refused_backend_is_502_and_an_open_breaker_503_with_retry_after(
    make_proxy: Callable[..., Proxy], use_proxy: Callable[[Proxy], None]
) -> None:
    use_proxy(
        make_proxy(
            proxy_settings(
                BLOCKCHAIN_SERVICE_URL=f"http://127.0.0.1:{free_port()}", PROXY_RETRIES=0
            )
        )
    )
    for _ in range(4):
        _, headers, body = invoke("GET", "/chain/info")
        assert "refused" in problem(502, headers, body)["detail"]
    _, headers, body = invoke("GET", "/chain/info")
    assert problem(503, headers, body)["breaker"] == "open"
    assert headers["retry-after"] == "1"


def test_unconfigured_backend_is_503_naming_the_setting() -> None:
    # GIVEN the function's own proxy, built from an environment with no backend URLs
    get_proxy.cache_clear()
    try:
        _, headers, body = invoke("GET", "/nodes/n-1", authorizer=USER)
    finally:
        get_proxy().close()
        get_proxy.cache_clear()
    assert "NODE_SERVICE_URL" in problem(503, headers, body)["detail"]


def test_routes_reverse_to_their_public_paths() -> None:
    app = load_module("proxy").app
    assert app.url_path_for("proxy_nodes", rest="n-1/config") == "/nodes/n-1/config"
