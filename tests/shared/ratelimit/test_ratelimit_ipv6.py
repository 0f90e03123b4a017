"""IPv6 callers are counted by their /64, the smallest network one subscriber is given.

Through a function's Mangum handler with payload 2.0 events whose `requestContext.http.sourceIp`
is IPv6 (what API Gateway sends from a dualstack API or custom domain), on real Redis.
"""

from __future__ import annotations

import pytest
import redis

from lucid.errors import RateLimitedError
from lucid.ratelimit import enforce_signin_limits
from lucid.ratelimit.policies import client_network
from lucid.store import resp
from tests.shared.ratelimit.helpers import function_app, invoke, limiter_for

VICTIM = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"


@pytest.mark.parametrize(
    ("source_ip", "counted"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:0DB8:0001:0002::ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # an IPv4 client on a dual-stack socket
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
        ("not:an:address", "not:an:address"),
    ],
)
def test_the_network_an_address_is_counted_under(source_ip: str, counted: str) -> None:
    assert client_network(source_ip) == counted


def test_addresses_of_one_ipv6_subscriber_share_one_public_budget(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN a public quota of 5
    handler = function_app(limiter_for(store_redis, RATE_LIMIT_PUBLIC=5))
    # WHEN one subscriber sends each request from another address of its /64
    statuses = [
        invoke(handler, "GET", "/items", source_ip=f"2001:db8:aa:bb::{n:x}")[0] for n in range(50)
    ]
    # THEN the sixth is refused all the same, and Redis holds one key for all of them
    assert statuses == [200] * 5 + [429] * 45
    assert redis_client.keys("*") == [b"lucid:local:rl:public:2001:db8:aa:bb::/64"]
    # AND the next /64 over is another caller
    assert invoke(handler, "GET", "/items", source_ip="2001:db8:aa:bc::1")[0] == 200


def test_signin_attempts_from_one_ipv6_subscriber_are_limited_together(
    store_redis: resp.Redis,
) -> None:
    # GIVEN 3 sign-in attempts per source and per address from one source
    limiter = limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_IP=3, RATE_LIMIT_SIGNIN_PER_ADDRESS=3)
    for n in range(3):
        enforce_signin_limits(f"2001:db8:5::{n + 1}", f"TAddress{n}", limiter=limiter)
    # WHEN a fourth attempt comes from yet another address of that /64 THEN it is refused
    with pytest.raises(RateLimitedError) as refused:
        enforce_signin_limits("2001:db8:5:0:ffff::1", "TAddress9", limiter=limiter)
    assert refused.value.headers["RateLimit-Policy"] == '"signin-ip";q=3;w=60'
    # AND guesses at one address through the login route are bounded per /64 too
    handler = function_app(limiter_for(store_redis, RATE_LIMIT_SIGNIN_PER_ADDRESS=3))
    statuses = [
        invoke(
            handler, "POST", "/auth/login", body={"address": VICTIM}, source_ip=f"2001:db8:7::{n}"
        )[0]
        for n in range(1, 6)
    ]
    assert statuses == [200] * 3 + [429] * 2
