"""The authorizer and the functions allow the same clock leeway past a token's `exp`: the
configured JWT_LEEWAY_SECONDS (10 s by default), not a fixed 30 s in the functions.

The functions check `exp` again because API Gateway may pass on an Allow it cached before the
token expired (lucid.web.deps.check_sign_in). Boundaries are one second either side, rounded so
that the time the test takes cannot move a token across them.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jwt
import pytest
import redis
from pymongo.database import Database

from lucid.config import get_settings
from tests.utils.auth_flow import authorize
from tests.utils.datastore import User, call

KEY = "test-only-key-0123456789abcdef0123456789abcdef"  # tests/conftest.py's JWT_SECRET_KEY


def _expired_by(seconds: int) -> int:
    """An `exp` that is `seconds` in the past by the time any check reads the clock: rounded
    up for a token meant to pass (the check then has one more second), down for one meant not to."""
    if seconds < get_settings().JWT_LEEWAY_SECONDS:
        return math.ceil(time.time()) - seconds
    return math.floor(time.time()) - seconds


def _token(exp: int, user: User) -> str:
    now = int(time.time())
    settings = get_settings()
    claims: dict[str, Any] = {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": user.id,
        "addr": user.address,
        "role": "user",
        "tier": "authenticated",
        "iat": exp - 600,
        "nbf": min(now, exp - 600),
        "exp": exp,
        "jti": user.jti,
        "sid": user.session_id,
        "typ": "access",
    }
    return jwt.encode(claims, KEY, algorithm="HS256", headers={"kid": "k1"})


def test_the_configured_leeway_is_ten_seconds_here() -> None:
    # The boundaries below sit inside the old fixed 30 s: they tell the two apart.
    assert get_settings().JWT_LEEWAY_SECONDS == 10


@pytest.mark.parametrize(
    ("past", "allowed"), [(-1, True), (1, False)], ids=["leeway-1", "leeway+1"]
)
def test_the_authorizer_allows_exactly_the_configured_leeway(
    redis_client: redis.Redis, alice: User, past: int, allowed: bool
) -> None:
    # GIVEN an access token that expired JWT_LEEWAY_SECONDS -1 / +1 seconds ago
    exp = _expired_by(get_settings().JWT_LEEWAY_SECONDS + past)
    # WHEN the authorizer is asked THEN it allows it within the leeway and denies it past it
    assert authorize(_token(exp, alice))["isAuthorized"] is allowed


@pytest.mark.parametrize(("past", "status"), [(-1, 200), (1, 401)], ids=["leeway-1", "leeway+1"])
def test_a_function_allows_exactly_the_configured_leeway(
    database: Database[dict[str, Any]], alice: User, past: int, status: int
) -> None:
    # GIVEN API Gateway passes on a cached Allow for a token that expired leeway -1 / +1 s ago
    alice.extra_context["exp"] = _expired_by(get_settings().JWT_LEEWAY_SECONDS + past)
    # WHEN the users function answers GET /users/me
    reply = call("users", "GET", "/users/me", caller=alice)
    # THEN it serves it within the leeway and refuses it past the leeway, as the authorizer does
    assert reply.status == status, reply.body
    if status == 401:
        assert reply.body["detail"] == "token has expired"
        assert reply.headers["content-type"] == "application/problem+json"
