"""The Lambda REQUEST authorizer (payload 2.0, simple responses) through its real handler."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
import redis
from pymongo.database import Database

from lucid.auth.authorizer import authorize as decide
from lucid.auth.authorizer import bearer_token
from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.revocation import RevocationList
from lucid.auth.tokens import get_token_service
from lucid.errors import ServiceUnavailableError
from lucid.store import resp
from lucid.store.documents import new_id
from lucid_edge.local import free_port
from tests.utils.auth_flow import authorize, authorizer_event, sign_in
from tests.utils.datastore import atomic_writes, database_for, revocations_on
from tests.utils.functions import load_handler
from tests.utils.layer_redis import unreachable_redis
from tests.utils.logs import logged_lines
from tests.utils.wallets import Wallet

KEY = "test-only-key-0123456789abcdef0123456789abcdef"  # tests/conftest.py's JWT_SECRET_KEY
SID = new_id()


@pytest.fixture
def database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes(), database_for("auth") as db:
        yield db


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "lucid-api-gateway/local",
        "aud": "lucid/local",
        "sub": "0" * 32,
        "addr": Wallet().address,
        "role": "user",
        "tier": "authenticated",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "j-1",
        "sid": SID,
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
            "sid": claims.sid,
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
    "alg-none": lambda: jwt.encode(_claims(), "", algorithm="none", headers={"kid": "k1"}),
    "refresh": lambda: "R" * 43,
    "sid": lambda: jwt.encode(
        {k: v for k, v in _claims().items() if k != "sid"}, KEY, headers={"kid": "k1"}
    ),
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


@pytest.mark.usefixtures("database")
@pytest.mark.parametrize("template", ["Basic {}", "Token {}", "{}", "Bearer {} extra"])
def test_a_valid_token_outside_a_bearer_value_is_denied(template: str) -> None:
    # GIVEN a signed-in caller's valid access token
    token = sign_in(Wallet())["access_token"]
    assert authorize(token)["isAuthorized"] is True
    # WHEN it comes under another scheme, without one, or with more after it THEN it is denied
    result = load_handler("authorizer")(authorizer_event(template.format(token)), None)
    assert result == {"isAuthorized": False}


def test_bearer_scheme_is_case_insensitive_and_identity_source_is_a_fallback(
    redis_client: redis.Redis,
) -> None:
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("BEARER  abc ") == "abc"
    event = authorizer_event(f"Bearer {_token()}")
    del event["headers"]["authorization"]
    assert load_handler("authorizer")(event, None)["isAuthorized"] is True


def test_a_token_of_a_revoked_sign_in_is_denied(
    redis_client: redis.Redis, store_redis: resp.Redis, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a sign-in (refresh family) and an access token naming it
    store = RefreshTokenStore(database, timedelta(days=14), revocations_on(store_redis, database))
    store.issue("0" * 32, "j-1", SID)
    token = _token()
    assert authorize(token)["isAuthorized"] is True
    # WHEN the sign-in is revoked THEN the token is denied, from Redis
    store.revoke_family(SID)
    assert authorize(token) == {"isAuthorized": False}
    # AND from MongoDB once Redis has lost its copy (a restart without persistence)
    redis_client.flushall()
    assert authorize(token) == {"isAuthorized": False}
    assert redis_client.hget("lucid:local:revoked-sign-ins", SID) is not None  # the copy is back


def _dead_redis() -> resp.Redis:
    return unreachable_redis(free_port())


def test_without_redis_mongodb_decides(
    store_redis: resp.Redis, database: Database[dict[str, Any]]
) -> None:
    # GIVEN Redis is unreachable, one sign-in live and one revoked in MongoDB
    store = RefreshTokenStore(database, timedelta(days=14), revocations_on(store_redis, database))
    revoked = new_id()
    store.issue("0" * 32, "j-1", SID)
    store.issue("0" * 32, "j-2", revoked)
    store.revoke_family(revoked)
    dead = _dead_redis()
    try:
        revocations = revocations_on(dead, database)
        # WHEN tokens of each are presented THEN the live one passes and the revoked one not
        live_event = authorizer_event(f"Bearer {_token()}")
        revoked_event = authorizer_event(f"Bearer {_token(sid=revoked)}")
        tokens = get_token_service()
        assert decide(live_event, tokens=tokens, revocations=revocations)["isAuthorized"] is True
        assert decide(revoked_event, tokens=tokens, revocations=revocations) == {
            "isAuthorized": False
        }
    finally:
        dead.close()


def test_without_mongodb_the_redis_copy_decides(
    store_redis: resp.Redis,
    database: Database[dict[str, Any]],
    dead_database: Database[dict[str, Any]],
) -> None:
    # GIVEN a revoked sign-in and a Redis copy loaded while MongoDB was up
    store = RefreshTokenStore(database, timedelta(days=14), revocations_on(store_redis, database))
    revoked = new_id()
    store.issue("0" * 32, "j-2", revoked)
    store.revoke_family(revoked)
    assert not revocations_on(store_redis, database).is_revoked(SID)  # the copy is loaded
    # WHEN MongoDB goes down THEN Redis alone still tells live from revoked
    revocations = revocations_on(store_redis, dead_database)
    tokens = get_token_service()
    live = decide(authorizer_event(f"Bearer {_token()}"), tokens=tokens, revocations=revocations)
    assert live["isAuthorized"] is True
    gone = authorizer_event(f"Bearer {_token(sid=revoked)}")
    assert decide(gone, tokens=tokens, revocations=revocations) == {"isAuthorized": False}


def test_without_redis_and_mongodb_it_is_an_error_never_a_cached_deny(
    dead_database: Database[dict[str, Any]],
) -> None:
    # GIVEN neither store answers WHEN a valid token is presented
    dead = _dead_redis()
    try:
        revocations = RevocationList(
            dead, lambda: revocations_on(dead, dead_database).record(), token_lifetime_seconds=900
        )
        event = authorizer_event(f"Bearer {_token()}")
        # THEN the authorizer raises (API Gateway: 500, not cached) rather than answering "no"
        with pytest.raises(ServiceUnavailableError):
            decide(event, tokens=get_token_service(), revocations=revocations)
    finally:
        dead.close()


@pytest.mark.usefixtures("redis_client")
@pytest.mark.parametrize(
    ("authorization", "reason"),
    [(None, "no bearer token"), ("Bearer not-a-jwt", "token is not a JWT")],
    ids=["no-token", "malformed"],
)
def test_a_refusal_is_logged_with_its_request_status_and_client_but_never_the_token(
    authorization: str | None, reason: str
) -> None:
    # GIVEN an authorizer event of one request from 198.51.100.7
    event = authorizer_event(authorization)
    # WHEN the authorizer refuses it
    with logged_lines() as lines:
        assert load_handler("authorizer")(event, None) == {"isAuthorized": False}
    # THEN its one line names the request (API Gateway's id), the status the client gets, the
    # client's address, the route and why; the token itself appears nowhere
    (denied,) = [line for line in lines if line["message"] == "denied"]
    assert denied["correlation_id"] == event["requestContext"]["requestId"]
    assert (denied["status"], denied["source_ip"]) == (403, "198.51.100.7")
    assert (denied["route"], denied["reason"]) == ("GET /users/me", reason)
    assert "not-a-jwt" not in json.dumps(lines)
