"""The Lambda REQUEST authorizer (payload 2.0, simple responses) through its real handler."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import redis
from pymongo.database import Database
from redis.backoff import NoBackoff
from redis.retry import Retry

from lucid.auth.authorizer import authorize as decide
from lucid.auth.authorizer import bearer_token
from lucid.auth.denylist import deny_token
from lucid.auth.tokens import get_token_service
from lucid_edge.local import free_port
from tests.utils.auth_flow import authorize, authorizer_event, sign_in
from tests.utils.datastore import atomic_writes, database_for
from tests.utils.functions import load_handler
from tests.utils.wallets import Wallet

KEY = "test-only-key-0123456789abcdef0123456789abcdef"  # tests/conftest.py's JWT_SECRET_KEY


@pytest.fixture
def database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes(), database_for("auth") as db:
        yield db


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "lucid-api-gateway",
        "aud": "lucid",
        "sub": "0" * 32,
        "addr": Wallet().address,
        "role": "user",
        "tier": "authenticated",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "j-1",
        "typ": "access",
    }
    claims.update(changes)
    return claims


def _token(key: str = KEY, algorithm: str = "HS256", **changes: Any) -> str:
    return jwt.encode(_claims(**changes), key, algorithm=algorithm, headers={"kid": "k1"})


@pytest.mark.usefixtures("database")
def test_signed_in_caller_is_authorized_with_its_context() -> None:
    wallet = Wallet()
    pair = sign_in(wallet)
    decision = authorize(pair["access_token"])
    claims = get_token_service().decode(pair["access_token"])
    assert decision == {
        "isAuthorized": True,
        "context": {
            "user_id": claims.sub,
            "address": wallet.address,
            "role": "user",
            "tier": "authenticated",
            "jti": claims.jti,
            "exp": claims.exp,
        },
    }


# Made when the test runs: a token timed at collection could be valid again by then (the suite
# takes minutes, the skew allowance is 30 s).
BAD_TOKENS: dict[str, Callable[[], str]] = {
    "expired": lambda: _token(exp=int(time.time()) - 60),
    "nbf-future": lambda: _token(nbf=int(time.time()) + 120),
    "iss": lambda: _token(iss="someone-else"),
    "aud": lambda: _token(aud="another-api"),
    "other-key": lambda: _token(key="another-key-0123456789abcdef0123456789abcdef"),
    "typ": lambda: _token(typ="refresh"),
    "alg-none": lambda: jwt.encode(_claims(), None, algorithm="none", headers={"kid": "k1"}),
    "refresh": lambda: "R" * 43,
}


@pytest.mark.usefixtures("redis_client")
@pytest.mark.parametrize("bad", list(BAD_TOKENS))
def test_bad_tokens_are_denied(bad: str) -> None:
    assert authorize(BAD_TOKENS[bad]()) == {"isAuthorized": False}


@pytest.mark.usefixtures("redis_client")
@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer a b", "token"]
)
def test_missing_or_non_bearer_authorization_is_denied(authorization: str | None) -> None:
    result = load_handler("authorizer")(authorizer_event(authorization), None)
    assert result == {"isAuthorized": False}


def test_bearer_scheme_is_case_insensitive_and_identity_source_is_a_fallback(
    redis_client: redis.Redis,
) -> None:
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("BEARER  abc ") == "abc"
    event = authorizer_event(f"Bearer {_token()}")
    del event["headers"]["authorization"]
    assert load_handler("authorizer")(event, None)["isAuthorized"] is True


def test_revoked_token_is_denied(redis_client: redis.Redis) -> None:
    token = _token(jti="revoked-1")
    assert authorize(token)["isAuthorized"] is True
    deny_token(redis_client, "revoked-1", int(time.time()) + 900)
    assert authorize(token) == {"isAuthorized": False}


def test_denylist_outage_fails_closed() -> None:
    # GIVEN Redis is unreachable WHEN a valid token is presented THEN it is refused
    dead = redis.Redis(
        port=free_port(),
        socket_connect_timeout=0.05,
        socket_timeout=0.05,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        event = authorizer_event(f"Bearer {_token()}")
        assert decide(event, tokens=get_token_service(), redis_client=dead) == {
            "isAuthorized": False
        }
    finally:
        dead.close()
