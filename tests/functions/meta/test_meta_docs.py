"""The API reference through the meta function's real Mangum handler: the gateway's OpenAPI
document, the Swagger UI page and its files, all served by the function itself."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from lucid_edge.openapi import DOCUMENT
from tests.utils.events import http_event
from tests.utils.functions import FUNCTIONS_DIR, load_handler, load_module

ROOT = FUNCTIONS_DIR.parent


def invoke(path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    result = load_handler("meta")(http_event("GET", path, **kwargs), None)
    headers = {k.lower(): v for k, v in result["headers"].items()}
    body = result.get("body", "")
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return result["statusCode"], headers, raw


def test_the_document_is_the_committed_one_as_json() -> None:
    status, headers, body = invoke("/meta/openapi.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body == (ROOT / DOCUMENT).read_bytes()
    assert json.loads(body)["openapi"] == "3.1.0"


def test_the_page_loads_swagger_ui_and_the_document_by_relative_urls_only() -> None:
    # GIVEN the page at .../meta/docs, under whatever stage or base path it is served
    status, headers, body = invoke("/meta/docs")
    page = body.decode()
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    # THEN every URL it uses is relative: no host, no CDN, no absolute path
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert set(urls) == {
        "docs/swagger-ui.css",
        "docs/favicon-32x32.png",
        "docs/swagger-ui-bundle.js",
        "docs/init.js",
    }
    _, _, script = invoke("/meta/docs/init.js")
    assert 'new URL("openapi.json", window.location.href)' in script.decode()
    assert "validatorUrl: null" in script.decode()  # no call to swagger.io's validator


def test_the_page_runs_only_its_own_scripts_and_cannot_be_framed() -> None:
    # GIVEN the page a reader pastes a bearer token into ("Authorize")
    _, headers, _ = invoke("/meta/docs")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in headers["content-security-policy"].split(";")
    )
    # THEN no inline or foreign script runs, it calls only its own origin, nothing frames it
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
        ("favicon-32x32.png", "image/png"),
    ],
)
def test_swagger_ui_s_files_come_from_the_installed_package(asset: str, content_type: str) -> None:
    swagger_ui = load_module("meta", "docs").swagger_ui_folder()
    status, headers, body = invoke(f"/meta/docs/{asset}")
    assert status == 200
    assert headers["content-type"] == content_type
    assert headers["cache-control"] == "public, max-age=3600"
    assert "content-encoding" not in headers
    assert body == (swagger_ui / asset).read_bytes()
    assert "5.31.0" in str(swagger_ui)  # the pinned Swagger UI 5 (it renders OpenAPI 3.1)


def test_files_are_gzipped_for_a_client_that_accepts_it() -> None:
    _, plain_headers, plain = invoke("/meta/docs/swagger-ui-bundle.js")
    status, headers, body = invoke(
        "/meta/docs/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip, deflate, br"}
    )
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == plain_headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == plain
    assert len(body) < len(plain) / 3  # 1.5 MB of script is ~0.4 MB on the wire


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
    ],
)
def test_accept_encoding_is_read_as_http_defines_it(accept_encoding: str, gzipped: bool) -> None:
    _, headers, _ = invoke("/meta/docs/init.js", headers={"Accept-Encoding": accept_encoding})
    assert ("content-encoding" in headers) is gzipped


@pytest.mark.parametrize(
    "asset", ["index.html", "swagger-initializer.js", "..%2Fapp.py", "%2E%2E%2Fopenapi.json"]
)
def test_only_the_page_s_own_files_are_served(asset: str) -> None:
    # GIVEN a file of the package or of the function the page does not use
    status, headers, body = invoke(f"/meta/docs/{asset}")
    # THEN it is a 404 problem, and nothing of the function's code leaks
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 404


def test_a_cold_start_reads_neither_the_document_nor_swagger_ui() -> None:
    # GIVEN a fresh interpreter that imports the meta function, as Lambda's cold start does
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from lucid_edge.loader import load_function_module\n"
        f"module = load_function_module(Path({str(FUNCTIONS_DIR / 'meta')!r}), 'app')\n"
        "route = next(r for r in module.docs_router.routes if r.path == '/meta/openapi.json')\n"
        "document = route.endpoint.__globals__['_document']\n"
        "print('swagger_ui_bundle' in sys.modules, document.cache_info().currsize)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    # THEN neither the Swagger UI package nor the document is loaded until a request asks
    assert loaded.stdout.splitlines()[-1] == "False 0"
