"""The tier limits through a function's Mangum handler: 101 requests, headers, keys, recovery."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from lucid.config import Settings
from lucid.errors import PROBLEM_CONTENT_TYPE
from lucid.ratelimit import RateLimiter
from lucid.ratelimit.window import MICROS, Counts, decide
from lucid.store import resp
from tests.shared.ratelimit.helpers import ADMIN, USER, function_app, invoke, limiter_for

TIERS = [
    pytest.param("public", None, {"RATE_LIMIT_PUBLIC": 100}, id="public-by-ip"),
    pytest.param("authenticated", USER, {"RATE_LIMIT_AUTHENTICATED": 100}, id="authenticated"),
    pytest.param("admin", ADMIN, {"RATE_LIMIT_ADMIN": 100}, id="admin"),
]


def send(handler: Any, count: int, **kwargs: Any) -> list[tuple[int, dict[str, str], Any]]:
    # A burst that straddles a minute boundary splits over two windows and its exact
    # remaining counts would shift: start it well inside a window (waits 3 s at most).
    to_edge = 60 - time.time() % 60
    if to_edge < 3:
        time.sleep(to_edge + 0.05)
    return [invoke(handler, "GET", "/items", **kwargs) for _ in range(count)]


@pytest.mark.parametrize(("tier", "authorizer", "limits"), TIERS)
def test_the_101st_request_of_a_tier_is_refused_with_headers(
    store_redis: resp.Redis, tier: str, authorizer: dict[str, str] | None, limits: dict[str, int]
) -> None:
    # GIVEN a tier of 100 requests per minute
    handler = function_app(limiter_for(store_redis, **limits))
    # WHEN one caller sends 101 requests
    responses = send(handler, 101, authorizer=authorizer)
    # THEN 1-100 pass, each telling what is left, and the 101st is a 429 problem
    for sent, (status, headers, _) in enumerate(responses[:100], start=1):
        assert status == 200
        assert headers["x-ratelimit-limit"] == "100"
        assert headers["x-ratelimit-remaining"] == str(100 - sent)
        assert headers["ratelimit-policy"] == f'"{tier}";q=100;w=60'
        reset = int(headers["x-ratelimit-reset"])
        assert headers["ratelimit"] == f'"{tier}";r={100 - sent};t={reset}'
        assert 0 < reset <= 60
    status, headers, body = responses[100]
    assert status == 429
    assert headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert headers["x-ratelimit-remaining"] == "0"
    reset = int(headers["x-ratelimit-reset"])
    # the window's 100 are spent: the next one fits 0.6 s into the next window
    retry_after = int(headers["retry-after"])
    assert retry_after in (reset, reset + 1)
    assert headers["ratelimit"] == f'"{tier}";r=0;t={retry_after}'
    assert body["status"] == 429
    assert body["type"].endswith("/rate-limited")
    assert body["instance"] == "/items"
    assert body["retry_after"] == int(headers["retry-after"])
    assert headers["x-request-id"]  # the refusal went through the correlation-id middleware


def test_real_defaults_refuse_the_101st_public_request(store_redis: resp.Redis) -> None:
    # GIVEN the shipped defaults (public 100 per 60 s)
    handler = function_app(RateLimiter(store_redis, Settings(RATE_LIMIT_ENABLED=True)))
    statuses = [status for status, _, _ in send(handler, 101)]
    assert statuses == [200] * 100 + [429]
    # AND a signed-in caller is on the authenticated tier of 1000, untouched by that
    status, headers, _ = invoke(handler, "GET", "/items", authorizer=USER)
    assert status == 200
    assert headers["ratelimit-policy"] == '"authenticated";q=1000;w=60'
    assert headers["x-ratelimit-remaining"] == "999"


def test_tiers_and_callers_have_separate_quotas(store_redis: resp.Redis) -> None:
    handler = function_app(
        limiter_for(
            store_redis, RATE_LIMIT_AUTHENTICATED=2, RATE_LIMIT_ADMIN=4, RATE_LIMIT_PUBLIC=1
        )
    )
    assert [s for s, _, _ in send(handler, 3, authorizer=USER)] == [200, 200, 429]
    assert [s for s, _, _ in send(handler, 5, authorizer=ADMIN)] == [200] * 4 + [429]
    other_user = {**USER, "user_id": "u-2"}
    assert [s for s, _, _ in send(handler, 3, authorizer=other_user)] == [200, 200, 429]
    # the same source IP without a token is one more, separate, public caller
    assert [s for s, _, _ in send(handler, 2)] == [200, 429]


def test_spoofed_forwarding_headers_do_not_dodge_the_public_limit(
    store_redis: resp.Redis,
) -> None:
    handler = function_app(limiter_for(store_redis, RATE_LIMIT_PUBLIC=5))
    statuses = [
        invoke(
            handler,
            "GET",
            "/items",
            source_ip="198.51.100.7",
            headers={
                "X-Forwarded-For": f"10.0.0.{n}",
                "X-Real-IP": f"10.1.0.{n}",
                "X-User-Id": f"user-{n}",
            },
        )[0]
        for n in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    # a different connection address is a different caller
    assert invoke(handler, "GET", "/items", source_ip="198.51.100.8")[0] == 200


def test_quota_comes_back_after_retry_after(store_redis: resp.Redis) -> None:
    # GIVEN 2 requests per second, both spent
    handler = function_app(
        limiter_for(store_redis, RATE_LIMIT_PUBLIC=2, RATE_LIMIT_WINDOW_SECONDS=1)
    )
    assert [s for s, _, _ in send(handler, 2)] == [200, 200]
    status, headers, _ = invoke(handler, "GET", "/items")
    assert status == 429
    assert headers["retry-after"] in ("1", "2")
    # WHEN the caller waits what Retry-After says
    time.sleep(int(headers["retry-after"]))
    # THEN it is served again
    status, headers, _ = invoke(handler, "GET", "/items")
    assert status == 200
    assert headers["ratelimit-policy"] == '"public";q=2;w=1'


def test_every_key_the_limiter_writes_expires_within_two_windows(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    handler = function_app(limiter_for(store_redis, RATE_LIMIT_WINDOW_SECONDS=30))
    send(handler, 3)
    send(handler, 3, authorizer=USER)
    send(handler, 3, authorizer=ADMIN)
    invoke(handler, "POST", "/auth/login", body={"address": "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"})
    keys = redis_client.keys("*")
    assert len(keys) == 5  # public, authenticated, admin, sign-in per IP and per address
    for key in keys:
        # a window's count matters until the end of the next window
        assert 0 < redis_client.pttl(key) <= 60_000, key


def test_disabled_limits_add_nothing_and_write_nothing(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    handler = function_app(limiter_for(store_redis, RATE_LIMIT_ENABLED=False, RATE_LIMIT_PUBLIC=1))
    for _ in range(3):
        status, headers, _ = invoke(handler, "GET", "/items")
        assert status == 200
        assert "x-ratelimit-limit" not in headers
    assert invoke(handler, "POST", "/auth/login", body={"address": "T1"})[0] == 200
    assert redis_client.dbsize() == 0


def test_reset_is_the_end_of_the_window_and_what_was_used_comes_back_over_the_next() -> None:
    # GIVEN one request at the start of a window (the limiter's arithmetic, as in its Lua)
    quota, window = 100, 60 * MICROS
    start = 1_000 * window
    first, state = decide(None, start, quota, window)
    assert (first.remaining, first.reset_us) == (quota - 1, window)
    # WHEN the caller comes back after X-RateLimit-Reset THEN the quota is not whole yet: the
    # request still weighs as the previous window's (what the headers' description says)
    at_reset, _ = decide(state, start + first.reset_us, quota, window)
    assert at_reset.remaining == quota - 2
    # AND a whole window later it is
    later, _ = decide(state, start + first.reset_us + window, quota, window)
    assert later.remaining == quota - 1


@pytest.mark.parametrize(
    ("quota", "state", "admitted", "remaining", "retry_s"),
    [
        (10, (3, 0), True, 6, 0),  # mid-window: the reset is the rest of the window
        (10, (4, 10), False, 0, 15),  # the previous window's weight must shrink by 2.5
        (10, (9, 4), False, 0, 45),  # no room left in this window: its end
        (1, (0, 1), False, 0, 45),  # a quota of one, spent in the previous window
        (10, (10, 4), False, 0, 51),  # over the quota in this window, and a previous one
        (10, (12, 0), False, 0, 60),  # over the quota in this window alone
    ],
)
def test_the_in_memory_decision_names_the_exact_wait_until_a_request_fits(
    quota: int, state: tuple[int, int], admitted: bool, remaining: int, retry_s: int
) -> None:
    # GIVEN a caller's counts (this window, the previous one), 15 s into a 60 s window: the
    # arithmetic the fallback limiter shares with the Lua script
    window, number = 60 * MICROS, 1_000
    now = number * window + 15 * MICROS
    counts = Counts(number, *state)
    verdict, _ = decide(counts, now, quota, window)
    # THEN the verdict, its reset (the window's end) and Retry-After are exact
    assert (verdict.admitted, verdict.remaining) == (admitted, remaining)
    assert (verdict.reset_us, verdict.retry_us) == (45 * MICROS, retry_s * MICROS)
    if not admitted:
        # AND the retry is the first moment one more request fits
        assert decide(counts, now + verdict.retry_us, quota, window)[0].admitted
        assert not decide(counts, now + verdict.retry_us - 1, quota, window)[0].admitted


def _sleep_into_the_next_window(window_s: int, at: float) -> None:
    """Until `at` seconds into the next window of `window_s` (windows start at multiples)."""
    time.sleep(window_s - time.time() % window_s + at)


def test_a_refusal_never_names_an_effective_window_beyond_retry_after(
    store_redis: resp.Redis,
) -> None:
    # GIVEN 2 requests per 2-second window, both spent in one window
    handler = function_app(
        limiter_for(store_redis, RATE_LIMIT_PUBLIC=2, RATE_LIMIT_WINDOW_SECONDS=2)
    )
    _sleep_into_the_next_window(2, at=0.05)
    assert [invoke(handler, "GET", "/items")[0] for _ in range(2)] == [200] * 2
    # WHEN the caller asks again early in the next window (any time in its first second, the
    # 2 still weigh more than 1)
    _sleep_into_the_next_window(2, at=0.1)
    status, headers, _ = invoke(handler, "GET", "/items")
    # THEN it is refused until their weight has slid to 1, a second into the window, before
    # this window ends (X-RateLimit-Reset, 2 s)
    assert status == 429
    assert (headers["retry-after"], headers["x-ratelimit-reset"]) == ("1", "2")
    # AND the IETF field says the same wait: a Retry-After earlier than the end of the
    # effective window `t` is what draft-ietf-httpapi-ratelimit-headers-11 section 6 rules out
    assert headers["ratelimit"] == '"public";r=0;t=1'
