"""Rate limiting end to end: `lucid serve` with two workers, real HTTP, real Redis (issue 5).

Every edge here runs as a subprocess with limits on (the test process runs with them off).
GET /auth/status is the public, rate-limited route (the meta function is exempt by design);
GET /users/me is counted at the authenticated tier, by user.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
import redis

from lucid.ratelimit.lease import LEASE_SECONDS, LEASE_SHARE
from tests.e2e.subprocess_edge import SubprocessEdge, sign_in, subprocess_edge
from tests.utils.tied import start_redis
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.e2e

PUBLIC_LIMIT = 20
AUTHENTICATED_LIMIT = 5
SIGNIN_PER_ADDRESS = 3
PUBLIC_ROUTE = "/auth/status"
PROBLEM_JSON = "application/problem+json"
FRESH = {"Connection": "close"}  # a new connection per request: any worker may take it
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-policy",
    "ratelimit",
)


def _limits_on(**settings: int | str) -> dict[str, str]:
    return {"RATE_LIMIT_ENABLED": "true", **{k: str(v) for k, v in settings.items()}}


@pytest.fixture(scope="module")
def edge() -> Iterator[SubprocessEdge]:
    """Small limits on the session Redis (each test flushes it through `redis_client`)."""
    env = _limits_on(
        RATE_LIMIT_PUBLIC=PUBLIC_LIMIT,
        RATE_LIMIT_AUTHENTICATED=AUTHENTICATED_LIMIT,
        RATE_LIMIT_SIGNIN_PER_ADDRESS=SIGNIN_PER_ADDRESS,
    )
    with subprocess_edge(env) as running:
        yield running


def _assert_refused(response: httpx.Response, policy: str) -> int:
    """A 429 problem+json naming `policy`, with Retry-After; returns Retry-After."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 429
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert problem["retry_after"] == retry_after
    assert policy in response.headers["ratelimit-policy"]
    return retry_after


def test_public_tier_refuses_the_request_after_the_quota_with_headers_on_every_answer(
    edge: SubprocessEdge, redis_client: redis.Redis
) -> None:
    # GIVEN the public quota is 20 per minute WHEN 21 requests arrive one after the other
    with edge.client() as client:
        responses = [client.get(PUBLIC_ROUTE) for _ in range(PUBLIC_LIMIT + 1)]
    # THEN the first 20 pass, each describing the quota and what is left of it
    for sent, response in enumerate(responses[:PUBLIC_LIMIT], start=1):
        assert response.status_code == 200, response.text
        headers = response.headers
        assert all(name in headers for name in RATE_LIMIT_HEADERS)
        remaining, reset = PUBLIC_LIMIT - sent, int(headers["x-ratelimit-reset"])
        assert headers["x-ratelimit-limit"] == str(PUBLIC_LIMIT)
        assert headers["x-ratelimit-remaining"] == str(remaining)
        assert 1 <= reset <= 60
        assert headers["ratelimit-policy"] == f'"public";q={PUBLIC_LIMIT};w=60'
        assert headers["ratelimit"] == f'"public";r={remaining};t={reset}'
        assert "retry-after" not in headers
    # AND the 21st is a 429 problem+json telling when to come back
    refused = responses[-1]
    retry_after = _assert_refused(refused, f'"public";q={PUBLIC_LIMIT};w=60')
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert retry_after >= int(refused.headers["x-ratelimit-reset"])  # not before this window ends


def test_concurrent_burst_through_both_workers_admits_exactly_the_quota(
    edge: SubprocessEdge, redis_client: redis.Redis
) -> None:
    # GIVEN 60 requests from 12 threads, each on a fresh connection (so both workers serve them)
    with edge.client(headers=FRESH) as client, ThreadPoolExecutor(max_workers=12) as pool:
        statuses = Counter(pool.map(lambda _: client.get(PUBLIC_ROUTE).status_code, range(60)))
    # THEN exactly the quota is admitted: Redis decides atomically for every worker
    assert statuses == {200: PUBLIC_LIMIT, 429: 60 - PUBLIC_LIMIT}


def test_leases_in_both_workers_never_admit_more_than_the_quota(redis_client: redis.Redis) -> None:
    # GIVEN a quota large enough for leases (up to (320 - 1) // 32 = 9 slots per worker), over
    # an hour's window, the burst kept off the hour's edge (where the sliding window may admit
    # more, by design: lucid.ratelimit.window)
    quota, window = 320, 3600
    held_at_most = 2 * min(32, (quota - 1) // LEASE_SHARE)
    env = _limits_on(RATE_LIMIT_PUBLIC=quota, RATE_LIMIT_WINDOW_SECONDS=window)
    with (
        subprocess_edge(env) as edge,
        edge.client(headers=FRESH) as client,
        ThreadPoolExecutor(max_workers=12) as pool,
    ):
        to_edge = window - time.time() % window
        if to_edge < 30:
            time.sleep(to_edge + 0.1)
        # WHEN twice the quota arrives on fresh connections (both workers serve it)
        burst = Counter(pool.map(lambda _: client.get(PUBLIC_ROUTE).status_code, range(2 * quota)))
        # THEN never more than the quota passes, and no more are refused early than the slots
        # the two workers may hold (README, "What every request goes through")
        assert set(burst) == {200, 429}
        assert quota - held_at_most <= burst[200] <= quota
        # AND once the leases have lapsed, what they held comes back, and nothing more
        time.sleep(LEASE_SECONDS + 0.1)
        later = Counter(pool.map(lambda _: client.get(PUBLIC_ROUTE).status_code, range(60)))
        assert burst[200] + later[200] <= quota


def test_spoofed_forwarding_headers_do_not_dodge_the_public_limit(
    edge: SubprocessEdge, redis_client: redis.Redis
) -> None:
    # GIVEN every request claims another client address in every forwarding header
    statuses = []
    with edge.client() as client:
        for n in range(PUBLIC_LIMIT + 1):
            spoofed = {
                "X-Forwarded-For": f"203.0.113.{n}",
                "Forwarded": f"for=198.51.100.{n}",
                "X-Real-IP": f"192.0.2.{n}",
                "True-Client-IP": f"192.0.2.{n + 100}",
            }
            statuses.append(client.get(PUBLIC_ROUTE, headers=spoofed).status_code)
    # THEN they are all counted against the one real source address
    assert statuses == [200] * PUBLIC_LIMIT + [429]


def test_authenticated_tier_counts_each_user_apart(
    edge: SubprocessEdge, redis_client: redis.Redis
) -> None:
    # GIVEN two users signed in over HTTP
    with edge.client() as client:
        first, second = sign_in(client, Wallet()), sign_in(client, Wallet())
        as_first = {"Authorization": f"Bearer {first}"}
        # WHEN the first one spends the authenticated quota
        spent = [client.get("/users/me", headers=as_first) for _ in range(AUTHENTICATED_LIMIT)]
        refused = client.get("/users/me", headers=as_first)
        # THEN each answer names the authenticated tier and the sixth is refused
        assert [r.status_code for r in spent] == [200] * AUTHENTICATED_LIMIT
        policy = f'"authenticated";q={AUTHENTICATED_LIMIT};w=60'
        assert {r.headers["ratelimit-policy"] for r in spent} == {policy}
        assert [r.headers["x-ratelimit-remaining"] for r in spent] == ["4", "3", "2", "1", "0"]
        _assert_refused(refused, policy)
        # AND the second user, from the same address, still has a whole quota
        other = client.get("/users/me", headers={"Authorization": f"Bearer {second}"})
        assert other.status_code == 200
        assert other.headers["x-ratelimit-remaining"] == str(AUTHENTICATED_LIMIT - 1)
        # AND so do anonymous callers from that address (the public tier is counted apart)
        anonymous = client.get(PUBLIC_ROUTE)
        assert anonymous.status_code == 200
        assert anonymous.headers["ratelimit-policy"].startswith('"public"')


def _admin_tokens_nobody_issued(real: str) -> dict[str, str]:
    """Tokens claiming the admin role: a real user's token with its payload edited, and tokens
    signed with the stage's own key but expired or minted for another stage."""
    header, payload, signature = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edited = {**claims, "role": "admin", "tier": "admin"}
    body = base64.urlsafe_b64encode(json.dumps(edited).encode()).rstrip(b"=").decode()
    key, kid = os.environ["JWT_SECRET_KEY"], {"kid": jwt.get_unverified_header(real).get("kid")}
    expired = {**edited, "iat": claims["iat"] - 3600, "nbf": claims["iat"] - 3600}
    expired["exp"] = claims["iat"] - 3000
    other_stage = {**edited, "iss": "lucid-api-gateway/prod", "aud": "lucid/prod"}
    return {
        "edited": f"{header}.{body}.{signature}",
        "expired": jwt.encode(expired, key, algorithm="HS256", headers=kid),
        "other-stage": jwt.encode(other_stage, key, algorithm="HS256", headers=kid),
    }


def test_no_token_picks_a_higher_tier_and_a_refused_one_counts_nowhere(
    edge: SubprocessEdge, redis_client: redis.Redis
) -> None:
    with edge.client() as client:
        real = sign_in(client, Wallet())
        for name, token in _admin_tokens_nobody_issued(real).items():
            as_admin = {"Authorization": f"Bearer {token}"}
            # WHEN a protected route gets a token claiming the admin role that no one issued
            refused = client.get("/users/me", headers=as_admin)
            # THEN the authorizer refuses it before any function (API Gateway's 403), so no
            # tier counts it
            assert refused.status_code == 403, name
            assert refused.json() == {"message": "Forbidden"}
            assert "x-ratelimit-limit" not in refused.headers
            # AND on a public route (no authorizer) it is nobody: the public tier, by address
            public = client.get(PUBLIC_ROUTE, headers=as_admin)
            assert public.status_code == 200
            assert public.headers["ratelimit-policy"] == f'"public";q={PUBLIC_LIMIT};w=60'
    assert redis_client.keys("lucid:local:rl:admin:*") == []
    assert redis_client.keys("lucid:local:rl:authenticated:*") == []


def test_signin_attempts_are_limited_per_address(
    edge: SubprocessEdge, redis_client: redis.Redis
) -> None:
    wallet = Wallet()
    with edge.client() as client:
        # GIVEN three challenges for one address (the per-address limit)
        challenges = [
            client.post("/auth/challenge", json={"address": wallet.address}) for _ in range(3)
        ]
        assert [r.status_code for r in challenges] == [200] * SIGNIN_PER_ADDRESS
        # WHEN a fourth challenge is asked for THEN it is refused on the address's account
        refused = client.post("/auth/challenge", json={"address": wallet.address})
        _assert_refused(refused, f'"signin-address";q={SIGNIN_PER_ADDRESS};w=60')
        assert "address" in refused.json()["detail"]
        # AND a correctly signed login for that address is refused too (no nonce guessing)
        message = challenges[-1].json()["message"]
        login = {"address": wallet.address, "message": message, "signature": wallet.sign(message)}
        _assert_refused(client.post("/auth/login", json=login), '"signin-address"')
        # AND another address from the same client is not affected
        other = client.post("/auth/challenge", json={"address": Wallet().address})
        assert other.status_code == 200


def test_the_quota_is_whole_again_after_retry_after(redis_client: redis.Redis) -> None:
    # GIVEN 3 requests per 1-second window, all spent
    env = _limits_on(RATE_LIMIT_PUBLIC=3, RATE_LIMIT_WINDOW_SECONDS=1)
    with subprocess_edge(env) as edge, edge.client() as client:
        assert [client.get(PUBLIC_ROUTE).status_code for _ in range(3)] == [200] * 3
        retry_after = _assert_refused(client.get(PUBLIC_ROUTE), '"public";q=3;w=1')
        assert retry_after <= 2  # never more than two windows
        # WHEN the caller waits as told THEN it is admitted again
        time.sleep(retry_after)
        assert client.get(PUBLIC_ROUTE).status_code == 200


def _statuses_on_fresh_connections(edge: SubprocessEdge, count: int) -> Counter[int]:
    with edge.client(headers=FRESH) as client:
        return Counter(client.get(PUBLIC_ROUTE).status_code for _ in range(count))


def test_redis_down_fails_open_per_instance_or_closed_and_recovers_on_restart() -> None:
    quota = 4
    # GIVEN two edges on their own Redis, one failing open (default) and one closed
    with (
        start_redis() as server,
        subprocess_edge(_limits_on(REDIS_URI=server.uri, RATE_LIMIT_PUBLIC=quota)) as fail_open,
        subprocess_edge(
            _limits_on(
                REDIS_URI=server.uri.replace("/0", "/1"),
                RATE_LIMIT_PUBLIC=quota,
                RATE_LIMIT_FAIL_MODE="closed",
            )
        ) as fail_closed,
        fail_open.client() as one_worker,
    ):
        assert one_worker.get(PUBLIC_ROUTE).status_code == 200
        assert httpx.get(fail_closed.url + PUBLIC_ROUTE).status_code == 200
        # WHEN Redis stops
        server.stop()
        # THEN the fail-open edge still answers and each worker limits on its own
        own_quota = [one_worker.get(PUBLIC_ROUTE) for _ in range(quota + 1)]
        assert [r.status_code for r in own_quota] == [200] * quota + [429]
        assert own_quota[0].headers["x-ratelimit-remaining"] == str(quota - 1)
        across = _statuses_on_fresh_connections(fail_open, 2 * quota)
        assert set(across) <= {200, 429}
        assert across[200] <= quota  # the other worker's own quota at most, never unlimited
        # AND the fail-closed edge refuses with 503 problem+json on every worker, never 500
        with fail_closed.client(headers=FRESH) as client:
            for closed in [client.get(PUBLIC_ROUTE) for _ in range(6)]:
                assert closed.status_code == 503, closed.text
                assert closed.headers["content-type"] == PROBLEM_JSON
                assert 1 <= int(closed.headers["retry-after"]) <= 5
        last_call_without_redis = time.monotonic()
        # WHEN Redis is back on the same port (and each worker's retry pause has passed)
        with start_redis(server.port):
            time.sleep(max(0.0, last_call_without_redis + 5.2 - time.monotonic()))
            # THEN the worker whose own quota was spent is admitted: Redis decides again
            back = one_worker.get(PUBLIC_ROUTE)
            assert back.status_code == 200
            assert back.headers["x-ratelimit-remaining"] == str(quota - 1)
            # AND both workers share that one count again
            assert _statuses_on_fresh_connections(fail_open, quota) == {200: quota - 1, 429: 1}
            assert _statuses_on_fresh_connections(fail_closed, 2) == {200: 2}


def test_edge_throttle_from_the_template_refuses_before_invoking_anything(
    redis_client: redis.Redis,
) -> None:
    # GIVEN a stage burst of 5 and a rate of 1 per second, and the tiered limits on
    overrides = {"ThrottlingBurstLimit": "5", "ThrottlingRateLimit": "1"}
    with (
        subprocess_edge(_limits_on(RATE_LIMIT_PUBLIC=100), overrides) as edge,
        edge.client() as client,
    ):
        # WHEN 6 requests arrive at once
        statuses = [client.get(PUBLIC_ROUTE).status_code for _ in range(5)]
        throttled = client.get(PUBLIC_ROUTE)
        # THEN the 6th gets API Gateway's own 429, without any rate-limit header of a function
        assert statuses == [200] * 5
        assert throttled.status_code == 429
        assert throttled.json() == {"message": "Too Many Requests"}
        assert "x-ratelimit-limit" not in throttled.headers
        # AND a protected route is throttled before its authorizer (each route has a bucket)
        unauthorized = [client.get("/users/me").status_code for _ in range(6)]
        assert unauthorized == [401] * 5 + [429]
        # WHEN a token has dripped back THEN the function counted only the 5 it served
        time.sleep(1.1)
        after = client.get(PUBLIC_ROUTE)
        assert after.status_code == 200
        assert after.headers["x-ratelimit-remaining"] == str(100 - 6)
