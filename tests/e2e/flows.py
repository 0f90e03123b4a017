"""What the users and sessions flows share: `lucid serve` as a subprocess, wallet sign-in over
HTTP, and the checks a client makes on a problem+json answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lucid.embedded import free_port
from tests.utils.wallets import Wallet

LUCID = Path(sys.executable).parent / "lucid"
TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
PROBLEM_TYPES = "https://lucid.dev/problems/"
AUTHORIZER_TTL_SECONDS = 1
JWT_SECRET_KEY = "e2e-flows-only-0123456789abcdef0123456789abcdef"
_START_SECONDS = 30


@dataclass(frozen=True)
class ServedEdge:
    """A `lucid serve` process: its base URL and the file holding its output."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        """A new HTTP client on the edge (the caller closes it)."""
        return httpx.Client(base_url=self.url, timeout=15)

    def output(self) -> str:
        """Everything the edge and its workers printed so far."""
        return self.log.read_text(errors="replace")


def _wait_until_serving(edge: ServedEdge) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        assert edge.process.poll() is None, edge.output()
        try:
            if httpx.get(f"{edge.url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"lucid serve did not start:\n{edge.output()}")


def _edge_environment(redis_uri: str, env: Mapping[str, str]) -> dict[str, str]:
    # Only what this edge is told: an earlier in-process `lucid serve` may have left its own
    # (now stopped) MONGODB_URI or edge settings in this process's environment.
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name != "MONGODB_URI" and not name.startswith("LUCID_EDGE_")
    }
    return {
        **inherited,
        "STAGE": "local",
        "REDIS_URI": redis_uri,
        "JWT_SECRET_KEY": JWT_SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        **env,
    }


@contextmanager
def served_edge(
    log_dir: Path, redis_uri: str, env: Mapping[str, str] | None = None, *, workers: int = 2
) -> Iterator[ServedEdge]:
    """`lucid serve` on the real template with `workers` processes until the block ends.

    It uses the Redis at `redis_uri`, a fixed JWT secret, rate limits off, its own in-memory
    MongoDB unless `env` names one, and caches authorizer decisions for AUTHORIZER_TTL_SECONDS.
    """
    port = free_port()
    log = log_dir / f"edge-{port}.log"
    environment = _edge_environment(redis_uri, env or {})
    # A file, not a pipe: hundreds of requests log more than a pipe buffer holds.
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(LUCID), "serve", "--template", str(TEMPLATE), "--port", str(port),
             "--workers", str(workers),
             "--parameter-overrides", f"AuthorizerTtlSeconds={AUTHORIZER_TTL_SECONDS}"],
            env=environment, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    edge = ServedEdge(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_serving(edge)
        yield edge
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when shutdown is broken
            process.kill()
            process.wait()
            raise
    assert process.returncode == 0, edge.output()
    assert "Traceback" not in edge.output(), edge.output()


@dataclass(frozen=True)
class Account:
    """A signed-in wallet: its user id and token pair."""

    wallet: Wallet
    user_id: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of this account."""
        return {"Authorization": f"Bearer {self.access_token}"}


def sign_in(client: httpx.Client, wallet: Wallet | None = None) -> Account:
    """Challenge, sign with the wallet (signMessageV2) and log in through the edge."""
    wallet = wallet or Wallet()
    challenge = client.post("/auth/challenge", json={"address": wallet.address})
    assert challenge.status_code == 200, challenge.text
    message = challenge.json()["message"]
    body = {"address": wallet.address, "message": message, "signature": wallet.sign(message)}
    login = client.post("/auth/login", json=body)
    assert login.status_code == 200, login.text
    pair = login.json()
    me = client.get("/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["address"] == wallet.address
    return Account(wallet, me.json()["id"], pair["access_token"], pair["refresh_token"])


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The RFC 9457 body of `response`, after checking its status, media type and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_TYPES + slug, body
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    return body


def create_session(client: httpx.Client, account: Account, name: str, **fields: Any) -> str:
    """Create a session for `account`; its id."""
    response = client.post("/sessions", json={"name": name, **fields}, headers=account.auth)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    return session_id


def walk(
    client: httpx.Client,
    path: str,
    account: Account,
    params: Mapping[str, str | int],
    between_pages: Callable[[], object] = lambda: None,
) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list, calling `between_pages` after each page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):  # bounded: a cursor that never ends is a failure, not a hang
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query, headers=account.auth)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        between_pages()
    raise AssertionError(f"{path} did not end after 1000 pages")


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` for i in range(count), each on its own thread, released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        except BaseException as error:  # re-raised on the test's thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    return results
