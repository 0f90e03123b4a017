"""Sign-in abuse limits: per source IP, and per TRON address from one source IP, default 10 per
minute each; nothing per address alone, so nobody can lock someone else's address out."""

from __future__ import annotations

import pytest
import redis

from lucid.errors import PROBLEM_CONTENT_TYPE, RateLimitedError
from lucid.ratelimit import RateLimiter, enforce_signin_limits
from lucid.store import resp
from tests.shared.ratelimit.helpers import function_app, invoke, limiter_for

VICTIM = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"


def refusal(limiter: RateLimiter, source: str, address: str) -> tuple[RateLimitedError, int]:
    """The refusal of one more attempt, and its X-RateLimit-Reset."""
    with pytest.raises(RateLimitedError) as refused:
        enforce_signin_limits(source, address, limiter=limiter)
    return refused.value, int(refused.value.headers["X-RateLimit-Reset"])


def test_one_source_gets_ten_attempts_per_minute_on_one_address(
    store_redis: resp.Redis,
) -> None:
    # GIVEN the defaults (10 per IP, 10 per address from one IP), per-IP raised out of the way
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_IP=100)
    for _ in range(10):
        enforce_signin_limits("203.0.113.1", VICTIM, limiter=limiter)
    # WHEN the same source tries the same address an 11th time
    refused, reset = refusal(limiter, "203.0.113.1", VICTIM)
    # THEN it is refused by the per-address limit, with Retry-After
    assert refused.detail.startswith("too many sign-in attempts for this address")
    # the next attempt fits 6 s (60 s / 10) into the next window
    assert int(refused.headers["Retry-After"]) == reset + 6
    assert refused.headers["RateLimit"] == f'"signin-address";r=0;t={reset + 6}'
    # AND the same source may still try another address
    assert enforce_signin_limits("203.0.113.1", "TOther", limiter=limiter) is not None


def test_refused_by_both_limits_the_caller_is_told_the_longer_wait(
    store_redis: resp.Redis,
) -> None:
    # GIVEN 3 attempts per IP (one every 20 s) and 2 per address from it (one every 30 s)
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_IP=3, RATE_LIMIT_SIGNIN_PER_ADDRESS=2)
    for address in (VICTIM, VICTIM, "TOther"):
        enforce_signin_limits("203.0.113.1", address, limiter=limiter)
    # WHEN the source tries the address again, over both limits at once
    refused, reset = refusal(limiter, "203.0.113.1", VICTIM)
    # THEN it is told the wait after which both admit it (the address's), not the shorter one
    assert refused.detail.startswith("too many sign-in attempts for this address")
    assert int(refused.headers["Retry-After"]) == reset + 30


def test_nobody_can_spend_the_budget_of_someone_elses_address(
    store_redis: resp.Redis,
) -> None:
    # GIVEN attackers on ten sources, each of which has used up its attempts on the victim
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_ADDRESS=3)
    for n in range(10):
        for _ in range(3):
            enforce_signin_limits(f"203.0.113.{n}", VICTIM, limiter=limiter)
        with pytest.raises(RateLimitedError):
            enforce_signin_limits(f"203.0.113.{n}", VICTIM, limiter=limiter)
    # WHEN the owner signs in from their own address THEN they have their whole budget
    decision = enforce_signin_limits("198.51.100.77", VICTIM, limiter=limiter)
    assert decision is not None
    assert decision.allowed
    assert decision.remaining == 2


def test_one_ip_gets_ten_attempts_per_minute_whatever_addresses_it_tries(
    store_redis: resp.Redis,
) -> None:
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_IP=3, RATE_LIMIT_SIGNIN_PER_ADDRESS=50)
    for n in range(3):
        decision = enforce_signin_limits("198.51.100.9", f"TAddress{n}", limiter=limiter)
        assert decision is not None
        assert decision.remaining == 2 - n
    with pytest.raises(RateLimitedError) as refused:
        enforce_signin_limits("198.51.100.9", "TAddress9", limiter=limiter)
    assert "IP address" in refused.value.detail
    assert refused.value.headers["RateLimit-Policy"] == '"signin-ip";q=3;w=60'


def test_a_refused_attempt_charges_neither_budget(store_redis: resp.Redis) -> None:
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_IP=4, RATE_LIMIT_SIGNIN_PER_ADDRESS=2)
    enforce_signin_limits("198.51.100.1", VICTIM, limiter=limiter)
    enforce_signin_limits("198.51.100.1", VICTIM, limiter=limiter)
    for _ in range(5):  # the address is spent from this IP: these are refused ...
        with pytest.raises(RateLimitedError):
            enforce_signin_limits("198.51.100.1", VICTIM, limiter=limiter)
    # ... and did not use up the IP's own budget (4, of which 2 are spent)
    decision = enforce_signin_limits("198.51.100.1", "TOther", limiter=limiter)
    assert decision is not None
    assert decision.remaining == 1


def test_a_huge_address_is_counted_under_a_short_key(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_ADDRESS=1)
    junk = "T" + "x" * 10_000
    enforce_signin_limits("198.51.100.3", junk, limiter=limiter)
    with pytest.raises(RateLimitedError):
        enforce_signin_limits("198.51.100.3", junk, limiter=limiter)
    # AND another huge address has a budget (and a short key) of its own
    enforce_signin_limits("198.51.100.3", "T" + "y" * 10_000, limiter=limiter)
    assert max(len(key) for key in redis_client.keys("*")) < 100


def test_login_route_answers_429_problem_with_both_policies(store_redis: resp.Redis) -> None:
    # GIVEN the login route of a function, sign-in limit 1 per address
    handler = function_app(limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_ADDRESS=1))
    first = invoke(handler, "POST", "/auth/login", body={"address": VICTIM})
    assert first[0] == 200
    # WHEN the same address signs in again
    status, headers, body = invoke(handler, "POST", "/auth/login", body={"address": VICTIM})
    # THEN 429 problem+json; the stricter sign-in numbers lead, the tier is listed after them
    assert status == 429
    assert headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert body["type"].endswith("/rate-limited")
    reset = int(headers["x-ratelimit-reset"])
    assert body["retry_after"] == int(headers["retry-after"]) == reset + 60
    assert body["detail"] == (
        f"too many sign-in attempts for this address from this IP address; retry in {reset + 60} s"
    )
    assert headers["x-ratelimit-limit"] == "1"
    assert headers["ratelimit-policy"] == '"signin-address";q=1;w=60, "public";q=100;w=60'
    assert headers["ratelimit"].startswith(f'"signin-address";r=0;t={reset + 60}, "public";r=98;t=')


def test_without_an_address_only_the_ip_is_counted(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_IP=1)
    enforce_signin_limits("198.51.100.5", None, limiter=limiter)
    refusal = r"^too many sign-in attempts from this IP address; retry in \d+ s$"
    with pytest.raises(RateLimitedError, match=refusal):
        enforce_signin_limits("198.51.100.5", "", limiter=limiter)
    assert redis_client.keys("*") == [b"lucid:local:rl:signin-ip:198.51.100.5"]
