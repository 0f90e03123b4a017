"""The backends' collection roots (`GET /manifests`) route like their subpaths, and on a named
stage the backend is asked for the public path without the stage."""

from __future__ import annotations

import pytest

from tests.functions.proxy.test_proxy_function import invoke
from tests.shared.proxy.proxy_backends import BackendServer
from tests.utils.events import load_event
from tests.utils.functions import load_handler

CALLER = {
    "user_id": "u-1",
    "address": "TQx",
    "role": "user",
    "tier": "authenticated",
    "jti": "j",
    "sid": "s-1",
}


@pytest.mark.usefixtures("proxied")
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("root", ["/chain", "/manifests", "/trust", "/nodes"])
def test_a_collection_root_is_forwarded_as_itself(
    backend: BackendServer, root: str, method: str
) -> None:
    # WHEN a signed-in caller asks for the collection root itself
    status, _, _ = invoke(
        method, root, route_key=f"ANY {root}", query="page=2", authorizer=CALLER, body=b"{}"
    )
    # THEN its backend is asked for exactly that path (not "/manifests/")
    assert status == 200
    seen = backend.received[-1]
    assert (seen.method, seen.path) == (method, f"{root}?page=2")


def test_a_collection_root_needs_a_caller() -> None:
    status, _, _ = invoke("GET", "/nodes", route_key="ANY /nodes")
    assert status == 401


@pytest.mark.usefixtures("proxied")
@pytest.mark.parametrize(
    ("path", "route_key"),
    [("/chain/blocks/7", "ANY /chain/{proxy+}"), ("/manifests", "ANY /manifests")],
)
def test_on_a_named_stage_the_backend_gets_the_path_without_the_stage(
    backend: BackendServer, path: str, route_key: str
) -> None:
    # GIVEN AWS's event for GET /dev<path> on stage dev
    event = load_event("http_api_v2_stage.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/dev" + path
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["requestContext"]["authorizer"] = {"lambda": CALLER}
    # WHEN the proxy function forwards it
    result = load_handler("proxy")(event, None)
    # THEN the backend is asked for the route's path, as if the API served at the root
    assert result["statusCode"] == 200, result
    assert backend.received[-1].path == path
