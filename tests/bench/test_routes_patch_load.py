"""`bench routes`' PATCH load (bench.scenarios_speed.patch_lua) under wrk, against a stand-in for
PATCH /sessions/{id} on 127.0.0.1 that checks If-Match as the sessions function does: every
non-2xx it counts is one the server chose, never a 412 the script brought on itself."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.harness import wrk
from bench.scenarios_speed import patch_lua, refused_statuses

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")

IDS = ["a1", "a2", "a3", "a4", "a5", "a6"]  # hex, as session ids are; three per wrk thread
SLOW = "a1"  # its first PATCH is written, then answered a second later
DROPPED = "a2"  # its first PATCH is written, then answered 503 with no session and no ETag


class _Sessions(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.versions = dict.fromkeys(IDS, 1)
        self.patches = dict.fromkeys(IDS, 0)
        self.answered: dict[int, int] = {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk's connections are
    server: _Sessions

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict[str, object], etag: str | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if etag is not None:
            self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(data)
        with self.server.lock:
            self.server.answered[status] = self.server.answered.get(status, 0) + 1

    def do_GET(self) -> None:
        session = self.path.rsplit("/", 1)[-1]
        with self.server.lock:
            version = self.server.versions[session]
        self._answer(200, {"id": session}, f'"{version}"')

    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        session = self.path.rsplit("/", 1)[-1]
        with self.server.lock:
            self.server.patches[session] += 1
            first = self.server.patches[session] == 1
            current = self.server.versions[session]
            matches = self.headers.get("If-Match") == f'"{current}"'
            if matches:
                self.server.versions[session] = current = current + 1
        if not matches:
            self._answer(
                412,
                {"current_etag": f'"{current}"', "instance": f"/sessions/{session}"},
            )
        elif session == DROPPED and first:
            self._answer(503, {"message": "Service Unavailable"})
        else:
            if session == SLOW and first:
                time.sleep(1.0)
            self._answer(200, {"id": session, "name": "renamed"}, f'"{current}"')


@pytest.fixture
def sessions() -> Iterator[_Sessions]:
    server = _Sessions()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@needs_wrk
def test_the_patch_load_sends_only_current_tags_and_counts_the_servers_refusals(
    sessions: _Sessions, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{sessions.server_address[1]}"
    statuses = tmp_path / "statuses"
    # GIVEN the script, started from each session's current ETag
    lua = patch_lua(url, {}, IDS, statuses)
    # WHEN it runs two seconds at 4 connections (two per wrk thread, three sessions each): one
    # session's answer is still out while its thread's walk comes round again, and another's
    # write is answered 503, with neither the session nor its new ETag
    result = wrk(url + "/sessions", 4, duration="2s", lua=lua)
    # THEN no PATCH carried a tag the server had replaced (no 412), the session whose answer
    # did not say its tag was not sent again, and the one refusal counted is the server's 503,
    # by status
    assert sum(sessions.patches.values()) > 50
    assert sessions.answered.get(412, 0) == 0
    assert sessions.patches[DROPPED] == 1
    assert refused_statuses(statuses) == {503: 1}
    assert result.non_2xx == 1
