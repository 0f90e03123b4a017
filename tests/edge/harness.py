"""Start the local edge in-process (uvicorn in a thread, one worker) on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from lucid.config import get_settings
from lucid_edge.local import free_port
from lucid_edge.server import Edge, build_app

FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATE = FIXTURES / "template.yaml"


@dataclass
class RunningEdge:
    """A served edge: its origin, the app object and an HTTP client bound to the API's base URL
    (the origin, plus `/{stage}` when the template's stage is named, as on AWS)."""

    url: str
    app: Edge
    client: httpx.Client

    @property
    def base_url(self) -> str:
        """Where the API's routes start: `url` on `$default`, `url/<stage>` on a named stage."""
        return str(self.client.base_url).rstrip("/")


@contextmanager
def running_edge(
    template: Path = TEMPLATE,
    overrides: dict[str, str] | None = None,
    *,
    concurrency: int = 2,
    reload: bool = False,
    **options: Any,
) -> Iterator[RunningEdge]:
    """Serve `template` on 127.0.0.1 until the block ends (`options`: `Edge`'s others)."""
    app = build_app(template, overrides, concurrency=concurrency, reload=reload, **options)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        server_header=False,
        date_header=False,  # as `lucid serve`: the app sends the Date
        http="lucid_edge.http_protocol:EdgeHttpProtocol",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the edge did not start"
    url = f"http://127.0.0.1:{port}"
    stage = app.template.api.stage
    client = httpx.Client(base_url=url if stage == "$default" else f"{url}/{stage}", timeout=10)
    try:
        yield RunningEdge(url, app, client)
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)
        app.close()


@contextmanager
def served_sign_in_url(url: str) -> Iterator[None]:
    """AUTH_SERVICE_URL set to `url`, as `make run` sets it to the URL it serves, for the
    functions an edge runs in this process: they read the layer's settings once, so these are
    read afresh here, and again once it is undone (`lucid login` signs no other domain)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTH_SERVICE_URL", url)
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()
