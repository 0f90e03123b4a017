"""The API reference in a real browser: Debian's headless Chromium, driven by Playwright, opens
/meta/docs on `lucid serve`, finds every operation of the document listed, and runs "Try it out"
on GET /health, at the API's root and under a stage prefix (/dev/...). Nothing it loads may
come from anywhere but the gateway. Screenshots are kept in test-artifacts/ (docs-root.png,
docs-stage.png).

Chromium is Debian's (`make test` installs it): the browser a test tool downloads cannot be
fetched on our machines. The flags are those that run it here: no sandbox as root, and no
background connections to Google's hosts, which this machine's closed network refuses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.e2e.subprocess_edge import ROOT, SubprocessEdge, subprocess_edge

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
STAGE = "/dev"


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    with subprocess_edge({}) as running:
        yield running


class _StageHandler(BaseHTTPRequestHandler):
    """A named stage in front of the edge, as API Gateway serves one: /dev/<path> reaches the
    route <path>, and nothing outside /dev/ is served."""

    server: _StageServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if not self.path.startswith(STAGE + "/"):
            self._answer(404, [("content-type", "application/json")], b'{"message":"Not Found"}')
            return
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "accept-encoding")
        }
        answer = httpx.get(self.server.target + self.path[len(STAGE) :], headers=headers)
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP]
        self._answer(answer.status_code, kept, answer.content)

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding"})


class _StageServer(ThreadingHTTPServer):
    target: str


@contextmanager
def stage_prefix(target: str) -> Iterator[str]:
    """A server on a free port serving `target` under /dev; its base URL (with /dev)."""
    server = _StageServer(("127.0.0.1", 0), _StageHandler)
    server.target = target
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{STAGE}"
    finally:
        server.shutdown()
        server.server_close()


def _listed(page: Page) -> set[tuple[str, str]]:
    blocks = page.locator(".opblock-summary")
    methods = blocks.locator(".opblock-summary-method").all_inner_texts()
    paths = blocks.locator(".opblock-summary-path").all_inner_texts()
    return {
        (m.strip(), p.replace("\u200b", "").strip()) for m, p in zip(methods, paths, strict=True)
    }


def _try_health(page: Page) -> tuple[str, str, str]:
    """Run "Try it out" on GET /health; (request URL, status, body) as the page shows them."""
    block = page.locator("#operations-meta-health")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    live = block.locator(".live-responses-table .response").first
    live.wait_for()
    url = block.locator(".request-url pre").inner_text()
    status = live.locator(".response-col_status").inner_text()
    body = live.locator(".response-col_description pre").first.inner_text()
    return url.strip(), status.strip(), body


def _open_reference(page: Page, base: str, screenshot: str) -> tuple[set[tuple[str, str]], Any]:
    page.goto(base + "/meta/docs")
    page.wait_for_selector(".opblock-summary", timeout=30_000)
    listed = _listed(page)
    tried = _try_health(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    return listed, tried


def test_swagger_ui_lists_every_operation_and_tries_health(edge: SubprocessEdge) -> None:
    assert CHROMIUM.exists(), "run `make test`: it installs Debian's chromium"
    document = httpx.get(edge.url + "/meta/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "description"
    }
    requested: list[str] = []
    with stage_prefix(edge.url) as staged, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            # The page's Content-Security-Policy must not block anything Swagger UI needs.
            refused: list[str] = []
            page.on(
                "console",
                lambda message: (
                    refused.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            # GIVEN the reference at the API's root ($default stage)
            listed, tried = _open_reference(page, edge.url, "docs-root.png")
            # THEN every operation of the document is listed, and /health answers the page
            assert listed == operations
            assert tried[0] == edge.url + "/health"
            assert tried[1] == "200"
            assert json.loads(tried[2]) == {"status": "ok"}
            # GIVEN the same reference under a named stage's prefix
            listed, tried = _open_reference(page, staged, "docs-stage.png")
            # THEN the page, its files, the document and "Try it out" all stay under /dev
            assert listed == operations
            assert tried[0] == staged + "/health"
            assert (tried[1], json.loads(tried[2])) == ("200", {"status": "ok"})
        finally:
            browser.close()
    # Nothing was fetched from anywhere but the gateway: no CDN, no online validator.
    outside = [url for url in requested if not url.startswith("http://127.0.0.1:")]
    assert outside == []
    assert refused == []
    assert any(url.startswith(staged + "/meta/docs/") for url in requested)
