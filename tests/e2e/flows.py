"""What the users and sessions flows share: `lucid serve` as a subprocess, wallet sign-in over
HTTP, and the checks a client makes on a problem+json answer."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge, token_pair
from tests.utils.redact import shown
from tests.utils.wallets import Wallet

PROBLEM_TYPES = "https://lucid.dev/problems/"
AUTHORIZER_TTL_SECONDS = 1
JWT_SECRET_KEY = "e2e-flows-only-0123456789abcdef0123456789abcdef"


@contextmanager
def served_edge(
    redis_uri: str, env: Mapping[str, str] | None = None, stage: str = "$default"
) -> Iterator[SubprocessEdge]:
    """`lucid serve` on the real template (2 workers) until the block ends.

    It uses the Redis at `redis_uri`, a fixed JWT secret, rate limits off, its own in-memory
    MongoDB unless `env` names one, caches authorizer decisions for AUTHORIZER_TTL_SECONDS and
    serves the API on `stage` (a named one under `/{stage}`).
    """
    environment = {
        "STAGE": "local",
        "REDIS_URI": redis_uri,
        "JWT_SECRET_KEY": JWT_SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        **(env or {}),
    }
    overrides = {"AuthorizerTtlSeconds": str(AUTHORIZER_TTL_SECONDS)}
    with subprocess_edge(environment, overrides, stage=stage) as edge:
        yield edge


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
    pair = token_pair(client, wallet)
    me = client.get("/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200, shown(me)
    assert me.json()["address"] == wallet.address
    return Account(wallet, me.json()["id"], pair["access_token"], pair["refresh_token"])


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The RFC 9457 body of `response`, after checking its status, media type and type."""
    assert response.status_code == status, shown(response)
    assert response.headers["content-type"] == "application/problem+json", shown(response)
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_TYPES + slug, shown(response)
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    return body


def create_session(client: httpx.Client, account: Account, name: str, **fields: Any) -> str:
    """Create a session for `account`; its id."""
    response = client.post("/sessions", json={"name": name, **fields}, headers=account.auth)
    assert response.status_code == 201, shown(response)
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
        assert response.status_code == 200, shown(response)
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
