"""DELETE /users/me: tokens revoked, sessions ended (not orphaned), profile deleted.

MongoDB is mongomock (a fresh in-memory database per test); the denylist is the real test Redis.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.auth.denylist import is_token_denied
from lucid.auth.refresh import RefreshTokenStore, hash_refresh_token
from lucid.errors import InvalidTokenError
from tests.utils.datastore import User, add_user, call, database_for, stored

users_api = partial(call, "users")
sessions_api = partial(call, "sessions")


def start_sessions(user: User, count: int) -> list[str]:
    ids = [
        sessions_api("POST", "/sessions", caller=user, body={"name": f"s{i}"}).body["id"]
        for i in range(count)
    ]
    sessions_api("PATCH", f"/sessions/{ids[0]}", caller=user, body={"status": "active"})
    return ids


def test_delete_me_ends_sessions_denylists_the_token_and_deletes_the_profile(
    alice: User, bob: User, database: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    # GIVEN alice signed in twice (two refresh families) with three sessions (one active),
    # and bob signed in with one session
    refresh = RefreshTokenStore(database, timedelta(days=14))
    alices_tokens = [refresh.issue(alice.id, alice.jti), refresh.issue(alice.id, "other-device")]
    bobs_token = refresh.issue(bob.id, bob.jti)
    alices = start_sessions(alice, 3)
    (bobs,) = start_sessions(bob, 1)
    # WHEN alice closes her account
    reply = users_api("DELETE", "/users/me", caller=alice)
    # THEN her profile is gone, every session of hers ended (kept, not orphaned), bob's untouched
    assert reply.status == 204
    assert database["users"].find_one({"_id": alice.id}) is None
    for session in database["sessions"].find({"_id": {"$in": alices}}):
        assert session["status"] == "ended"
        assert session["ended_at"] is not None
    assert stored(database["sessions"], bobs)["status"] == "active"
    # AND the access token she used is refused from now until it would have expired
    assert is_token_denied(redis_client, alice.jti)
    ttl = redis_client.ttl("lucid:denied-jti:" + alice.jti)
    assert 0 < ttl <= 15 * 60 + 60
    assert not is_token_denied(redis_client, bob.jti)
    # AND neither of her refresh tokens can mint a new access token; bob's still can
    for token in alices_tokens:
        with pytest.raises(InvalidTokenError, match="revoked"):
            refresh.use(token)
    assert refresh.use(bobs_token).user_id == bob.id


def test_the_denylist_entry_lasts_until_the_tokens_exp_when_the_authorizer_passes_it(
    alice: User, redis_client: redis.Redis
) -> None:
    alice.extra_context["exp"] = int(time.time()) + 120
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    assert 100 < redis_client.ttl("lucid:denied-jti:" + alice.jti) <= 120 + 30


def test_the_last_admin_cannot_close_their_account(
    admin: User, database: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    reply = users_api("DELETE", "/users/me", caller=admin)
    assert reply.status == 409
    assert stored(database["users"], admin.id)["role"] == "admin"
    assert not is_token_denied(redis_client, admin.jti)


def test_an_admin_who_is_not_the_last_may_leave(
    admin: User, database: Database[dict[str, Any]]
) -> None:
    leaving = add_user(database, role="admin")
    assert users_api("DELETE", "/users/me", caller=leaving).status == 204
    assert [user["_id"] for user in database["users"].find({"role": "admin"})] == [admin.id]


def test_mongodb_down_is_503_and_the_retry_completes_the_closure(
    alice: User,
    database: Database[dict[str, Any]],
    dead_database: Database[dict[str, Any]],
    redis_client: redis.Redis,
) -> None:
    (session,) = start_sessions(alice, 1)
    refresh = RefreshTokenStore(database, timedelta(days=14))
    token = refresh.issue(alice.id, alice.jti)
    # GIVEN MongoDB is down: the closure fails before changing anything
    with database_for("users", "sessions", database=dead_database):
        reply = users_api("DELETE", "/users/me", caller=alice)
    assert reply.status == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert database["users"].find_one({"_id": alice.id}) is not None
    assert stored(database["sessions"], session)["status"] == "active"
    assert not is_token_denied(redis_client, alice.jti)  # so the client can retry with it
    assert stored(database["tokens"], hash_refresh_token(token))["revoked_at"] is None
    # WHEN it is back and the client retries THEN the closure completes
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    assert stored(database["sessions"], session)["status"] == "ended"
    assert database["users"].find_one({"_id": alice.id}) is None
    assert stored(database["tokens"], hash_refresh_token(token))["revoked_at"] is not None


def test_a_retry_after_the_profile_was_already_deleted_finishes_the_job(
    alice: User, database: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    # GIVEN an earlier attempt got as far as deleting the profile, then failed
    (session,) = start_sessions(alice, 1)
    database["users"].delete_one({"_id": alice.id})
    # WHEN the client retries THEN the remaining steps complete
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    assert stored(database["sessions"], session)["status"] == "ended"
    assert is_token_denied(redis_client, alice.jti)


@pytest.mark.parametrize("exp", ["soon", None, [1]])
def test_an_unusable_exp_in_the_context_falls_back_to_a_full_token_lifetime(
    alice: User, redis_client: redis.Redis, exp: object
) -> None:
    alice.extra_context["exp"] = exp
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    assert 14 * 60 < redis_client.ttl("lucid:denied-jti:" + alice.jti) <= 15 * 60 + 30


def test_a_context_without_jti_denylists_nothing(alice: User, redis_client: redis.Redis) -> None:
    alice.jti = ""
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    assert redis_client.keys("lucid:denied-jti:*") == []
