"""Revocation that holds (issue 12, findings 1 to 5), end to end: `lucid serve` with two workers,
the template's 60 s authorizer cache, real HTTP on 127.0.0.1, and a real redis-server of this
module's own (the local edge's embedded one), which the tests stop and restart without
persistence. MongoDB is the edge's in-memory store (no MongoDB server exists on these machines).

A decision the authorizer already cached is reached by calling again on the same keep-alive
connection (one connection is served by one worker); an uncached one by presenting a token no
worker has seen. Fresh connections (`Connection: close`) spread calls over both workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from lucid_edge.local import EmbeddedRedis
from tests.e2e.flows import JWT_SECRET_KEY, Account, problem, sign_in
from tests.e2e.subprocess_edge import SubprocessEdge, subprocess_edge, token_pair
from tests.utils.redis_restore import kill_and_restore
from tests.utils.tied import start_redis
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.e2e

ADMIN_WALLET = Wallet()
AUTHORIZER_TTL_SECONDS = 60  # the template's default: every cached decision outlives a test
FRESH = {"Connection": "close"}
REFUSED = (401, 403)  # 401: a function refused it; 403: the authorizer did (uncached decision)


@dataclass
class RestartableRedis:
    """The module's redis-server, which a test may stop and start again on the same port, empty
    or from the snapshot its last SAVE wrote into `data_dir`."""

    server: EmbeddedRedis
    data_dir: Path

    @property
    def uri(self) -> str:
        return self.server.uri

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        """A new, empty redis-server (no persistence) on the port the edge knows."""
        (self.data_dir / "dump.rdb").unlink(missing_ok=True)
        self.server = start_redis(self.server.port, data_dir=self.data_dir)

    def restart(self) -> None:
        self.stop()
        self.start()

    def save(self) -> None:
        """SAVE: a snapshot of what the server holds now."""
        with redis.Redis.from_url(self.uri) as client:
            client.save()

    def kill_and_restore(self) -> None:
        """kill -9, then a new redis-server on the same port loading the last snapshot."""
        self.server = kill_and_restore(self.server)


@pytest.fixture(scope="module")
def redis_server_of_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableRedis]:
    data_dir = tmp_path_factory.mktemp("edge-redis")
    holder = RestartableRedis(start_redis(data_dir=data_dir), data_dir)
    yield holder
    holder.stop()


@pytest.fixture(scope="module")
def edge(redis_server_of_edge: RestartableRedis) -> Iterator[SubprocessEdge]:
    env = {
        "STAGE": "local",
        "REDIS_URI": redis_server_of_edge.uri,
        "JWT_SECRET_KEY": JWT_SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        "ADMIN_ADDRESSES": ADMIN_WALLET.address,
    }
    overrides = {"AuthorizerTtlSeconds": str(AUTHORIZER_TTL_SECONDS)}
    with subprocess_edge(env, overrides) as served:
        yield served


@pytest.fixture
def redis_up(redis_server_of_edge: RestartableRedis) -> Iterator[RestartableRedis]:
    """The edge's Redis, running again after the test whatever the test did to it."""
    yield redis_server_of_edge
    if redis_server_of_edge.server.process.poll() is not None:
        redis_server_of_edge.start()


@pytest.fixture
def admin(client: httpx.Client) -> Account:
    return sign_in(client, ADMIN_WALLET)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def verify(edge: SubprocessEdge, token: str) -> int:
    """The status of POST /auth/verify for `token` (a public route: no authorizer cache)."""
    return httpx.post(edge.url + "/auth/verify", json={"token": token}).status_code


def on_fresh_connections(edge: SubprocessEdge, method: str, path: str, token: str) -> set[int]:
    """The statuses of six calls, each on a new connection (so both workers answer some)."""
    statuses = set()
    for _ in range(6):
        response = httpx.request(method, edge.url + path, headers={**bearer(token), **FRESH})
        statuses.add(response.status_code)
    return statuses


# --- finding 1 ---------------------------------------------------------------------------


def test_a_demoted_admin_loses_admin_powers_at_the_next_call(
    client: httpx.Client, admin: Account
) -> None:
    # GIVEN C, promoted to admin, signed in and listing users (the edge caches the decision)
    c = sign_in(client)
    d = sign_in(client)
    promoted = client.put(f"/users/{c.user_id}/role", json={"role": "admin"}, headers=admin.auth)
    assert promoted.status_code == 200, promoted.text
    c = sign_in(client, c.wallet)
    for _ in range(3):
        assert client.get("/users", headers=c.auth).status_code == 200
    # WHEN the admin demotes C
    demoted = client.put(f"/users/{c.user_id}/role", json={"role": "user"}, headers=admin.auth)
    assert demoted.status_code == 200, demoted.text
    # THEN C's next admin calls are refused, though the edge may still hold the cached decision
    # (the function's 401 for the revoked sign-in; the authorizer's 403 on a worker without it)
    listing = client.get("/users", headers=c.auth)
    assert listing.status_code in REFUSED, listing.text
    handed_on = client.put(f"/users/{d.user_id}/role", json={"role": "admin"}, headers=c.auth)
    assert handed_on.status_code in REFUSED, handed_on.text
    # AND D was not made an admin: signed in afresh, D is a plain user
    assert client.get(f"/users/{d.user_id}", headers=admin.auth).json()["role"] == "user"
    d_again = sign_in(client, d.wallet)
    assert client.get("/users", headers=d_again.auth).status_code == 403


# --- finding 3 ---------------------------------------------------------------------------


def test_refresh_token_reuse_refuses_every_access_token_of_the_sign_in(
    edge: SubprocessEdge, client: httpx.Client
) -> None:
    # GIVEN a sign-in whose first access token the edge has cached, rotated once
    first = sign_in(client)
    rotated = client.post("/auth/refresh", json={"refresh_token": first.refresh_token})
    assert rotated.status_code == 200, rotated.text
    second_access = rotated.json()["access_token"]
    # WHEN the spent refresh token comes back
    reuse = client.post("/auth/refresh", json={"refresh_token": first.refresh_token})
    assert reuse.status_code == 401
    assert "revoked" in reuse.json()["detail"]
    # THEN the token the rotation issued is refused at its first (uncached) decision
    assert on_fresh_connections(edge, "GET", "/users/me", second_access) == {403}
    # AND the first token is refused by the function although the edge cached it as allowed
    cached = client.get("/users/me", headers=first.auth)
    assert cached.status_code == 401, cached.text
    assert on_fresh_connections(edge, "GET", "/users/me", first.access_token) <= set(REFUSED)
    assert verify(edge, first.access_token) == verify(edge, second_access) == 401


# --- finding 4 ---------------------------------------------------------------------------


def test_a_closed_account_writes_nothing(
    edge: SubprocessEdge, client: httpx.Client, admin: Account
) -> None:
    # GIVEN a signed-in user whose decision the edge has cached
    user = sign_in(client)
    assert client.get("/sessions", headers=user.auth).status_code == 200
    # WHEN the account is closed, and the same token then tries to create sessions
    assert client.delete("/users/me", headers=user.auth).status_code == 204
    attempts = [
        client.post("/sessions", json={"name": f"after-{i}"}, headers=user.auth) for i in range(6)
    ]
    # THEN every attempt is refused and nothing was written
    assert [r.status_code for r in attempts] == [401] * 6
    owned = client.get("/sessions", params={"owner_id": user.user_id}, headers=admin.auth)
    assert owned.status_code == 200, owned.text
    assert owned.json()["items"] == []
    assert on_fresh_connections(edge, "POST", "/sessions", user.access_token) <= set(REFUSED)


# --- finding 2 ---------------------------------------------------------------------------


def test_a_redis_outage_neither_locks_users_out_nor_lets_revoked_tokens_in(
    edge: SubprocessEdge, client: httpx.Client, redis_up: RestartableRedis
) -> None:
    # GIVEN a signed-in user whose token no worker has seen yet, and a logged-out one
    fresh = token_pair(client, Wallet())["access_token"]
    gone = sign_in(client)
    assert client.post("/auth/logout", headers=gone.auth).status_code == 204
    # WHEN Redis stops and the user calls
    redis_up.stop()
    during = on_fresh_connections(edge, "GET", "/users/me", fresh)
    # THEN the call is answered from MongoDB, the record of revocations: no Deny, no lock-out
    assert during == {200}
    assert on_fresh_connections(edge, "GET", "/users/me", gone.access_token) <= set(REFUSED)
    # AND once Redis is back every worker serves the user at once
    redis_up.start()
    assert on_fresh_connections(edge, "GET", "/users/me", fresh) == {200}


# --- finding 5 ---------------------------------------------------------------------------


def test_every_kind_of_revocation_survives_a_redis_restart(
    edge: SubprocessEdge, client: httpx.Client, admin: Account, redis_up: RestartableRedis
) -> None:
    # GIVEN one token revoked by each route to revocation
    logged_out = sign_in(client)
    assert client.post("/auth/logout", headers=logged_out.auth).status_code == 204
    reused = sign_in(client)
    rotated = client.post("/auth/refresh", json={"refresh_token": reused.refresh_token})
    reuse = client.post("/auth/refresh", json={"refresh_token": reused.refresh_token})
    assert (rotated.status_code, reuse.status_code) == (200, 401)
    closed = sign_in(client)
    assert client.delete("/users/me", headers=closed.auth).status_code == 204
    demoted = sign_in(client)
    promoted = client.put(
        f"/users/{demoted.user_id}/role", json={"role": "admin"}, headers=admin.auth
    )
    assert promoted.status_code == 200
    demoted = sign_in(client, demoted.wallet)
    demotion = client.put(
        f"/users/{demoted.user_id}/role", json={"role": "user"}, headers=admin.auth
    )
    assert demotion.status_code == 200
    revoked = {
        "logout": logged_out.access_token,
        "reuse": rotated.json()["access_token"],
        "closure": closed.access_token,
        "role change": demoted.access_token,
    }
    assert {kind: verify(edge, token) for kind, token in revoked.items()} == dict.fromkeys(
        revoked, 401
    )
    # WHEN Redis restarts empty (no persistence)
    redis_up.restart()
    # THEN every one of them is still refused, by the public checks and on protected routes
    assert {kind: verify(edge, token) for kind, token in revoked.items()} == dict.fromkeys(
        revoked, 401
    )
    for token in revoked.values():
        status = httpx.get(edge.url + "/auth/status", headers=bearer(token)).json()
        assert status["authenticated"] is False
        assert on_fresh_connections(edge, "GET", "/users/me", token) <= set(REFUSED)
    # AND a token nobody revoked still works, on every worker, right after the restart
    assert on_fresh_connections(edge, "GET", "/users/me", admin.access_token) == {200}


def test_a_revocation_made_while_redis_is_down_holds_once_it_is_back(
    edge: SubprocessEdge, client: httpx.Client, redis_up: RestartableRedis
) -> None:
    # GIVEN Redis is down
    user = sign_in(client)
    redis_up.stop()
    # WHEN the user logs out meanwhile
    started = time.monotonic()
    logout = client.post("/auth/logout", headers=user.auth)
    assert logout.status_code == 204, logout.text
    # THEN the token is refused during the outage and after Redis is back
    assert verify(edge, user.access_token) == 401
    redis_up.start()
    assert verify(edge, user.access_token) == 401
    assert on_fresh_connections(edge, "GET", "/users/me", user.access_token) <= set(REFUSED)
    assert time.monotonic() - started < AUTHORIZER_TTL_SECONDS  # all within one cache lifetime


# --- a restart that restores older data ---------------------------------------------------


def test_a_redis_restored_from_an_older_snapshot_forgets_no_revocation(
    edge: SubprocessEdge, client: httpx.Client, redis_up: RestartableRedis
) -> None:
    # GIVEN a user whose decision the edge has cached, and another signed in, and a snapshot of
    # Redis taken now (the copy of the revocations in it vouches for itself)
    leaving = sign_in(client)
    staying = sign_in(client)
    assert on_fresh_connections(edge, "GET", "/users/me", leaving.access_token) == {200}
    redis_up.save()
    # WHEN the user logs out, and Redis is then killed and started again from the snapshot
    assert client.post("/auth/logout", headers=leaving.auth).status_code == 204
    redis_up.kill_and_restore()
    # THEN the very next call refuses the logged-out token, cached decision or not
    cached = client.get("/users/me", headers=leaving.auth)
    assert cached.status_code == 401, cached.text
    assert verify(edge, leaving.access_token) == 401
    assert on_fresh_connections(edge, "GET", "/users/me", leaving.access_token) <= set(REFUSED)
    # AND nobody valid is refused: the other user is served on every worker
    assert on_fresh_connections(edge, "GET", "/users/me", staying.access_token) == {200}


def test_a_nonce_spent_after_the_snapshot_cannot_sign_in_again_after_a_restore(
    client: httpx.Client, redis_up: RestartableRedis
) -> None:
    # GIVEN a wallet's challenge, signed, and a snapshot of Redis taken now (the nonce is in it)
    wallet = Wallet()
    challenge = client.post("/auth/challenge", json={"address": wallet.address})
    assert challenge.status_code == 200, challenge.text
    message = challenge.json()["message"]
    login = {"address": wallet.address, "message": message, "signature": wallet.sign(message)}
    redis_up.save()
    # WHEN the wallet signs in with it, and Redis is then killed and started from the snapshot
    first = client.post("/auth/login", json=login)
    assert first.status_code == 200, first.text
    redis_up.kill_and_restore()
    # THEN the same signed message is refused, as any spent nonce is
    replay = client.post("/auth/login", json=login)
    assert (
        problem(replay, 401, "unknown-nonce")["detail"]
        == "the nonce is unknown or was already used"
    )
    # AND the sign-in it did start is untouched and the wallet signs in afresh
    me = client.get("/users/me", headers=bearer(first.json()["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["last_login_at"] == me.json()["created_at"]
    assert sign_in(client, wallet).user_id == me.json()["id"]
