"""DELETE /users/me: sessions ended (not orphaned), profile deleted, every sign-in revoked, and
nothing written for the account afterwards.

MongoDB is mongomock (a fresh in-memory database per test); Redis is the real test server.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.auth.refresh import RefreshTokenStore, hash_refresh_token
from lucid.config import MAX_JWT_LEEWAY_SECONDS, get_settings
from lucid.errors import InvalidTokenError
from lucid.store import resp
from lucid.store.documents import new_id
from lucid.store.keys import revocations_key
from tests.utils.datastore import User, add_user, call, database_for, revocations_on, stored

users_api = partial(call, "users")
sessions_api = partial(call, "sessions")


def start_sessions(user: User, count: int) -> list[str]:
    ids = [
        sessions_api("POST", "/sessions", caller=user, body={"name": f"s{i}"}).body["id"]
        for i in range(count)
    ]
    sessions_api("PATCH", f"/sessions/{ids[0]}", caller=user, body={"status": "active"})
    return ids


def sign_ins(database: Database[dict[str, Any]], client: resp.Redis) -> RefreshTokenStore:
    return RefreshTokenStore(database, timedelta(days=14), revocations_on(client, database))


def test_delete_me_ends_sessions_revokes_every_sign_in_and_deletes_the_profile(
    alice: User,
    bob: User,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN alice signed in twice (this request's sign-in and another device), three sessions
    # (one active), and bob signed in with one session
    refresh = sign_ins(database, store_redis)
    other_device = new_id()
    alices_tokens = [
        refresh.issue(alice.id, alice.jti, alice.session_id),
        refresh.issue(alice.id, "jti-2", other_device),
    ]
    bobs_token = refresh.issue(bob.id, bob.jti, bob.session_id)
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
    # AND both her sign-ins are revoked, bob's is not
    revocations = revocations_on(store_redis, database)
    assert revocations.is_revoked(alice.session_id)
    assert revocations.is_revoked(other_device)
    assert not revocations.is_revoked(bob.session_id)
    # AND neither of her refresh tokens can mint a new access token; bob's still can
    for token in alices_tokens:
        with pytest.raises(InvalidTokenError, match="revoked"):
            refresh.use(token)
    assert refresh.use(bobs_token).user_id == bob.id


def test_a_closure_keeps_its_revocation_for_a_token_lifetime_and_the_leeway(
    alice: User,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN alice signed in; WHEN she closes her account
    sign_ins(database, store_redis).issue(alice.id, alice.jti, alice.session_id)
    before = time.time()
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    # THEN Redis keeps her sign-in revoked for as long as one of its access tokens can live,
    # TOKEN_EXPIRE_MINUTES, plus the most clock skew a check allows (lucid.auth.revocation)
    horizon = 60 * get_settings().TOKEN_EXPIRE_MINUTES + MAX_JWT_LEEWAY_SECONDS
    kept_until = redis_client.hget(revocations_key(), alice.session_id)
    assert kept_until is not None
    assert before + horizon - 1 <= float(kept_until) <= time.time() + horizon + 1


def test_after_the_closure_the_token_writes_nothing(
    alice: User, database: Database[dict[str, Any]], store_redis: resp.Redis
) -> None:
    # GIVEN alice closed her account; API Gateway may still serve her cached decision
    sign_ins(database, store_redis).issue(alice.id, alice.jti, alice.session_id)
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    # WHEN the same authorizer context comes back, to write or to read
    created = sessions_api("POST", "/sessions", caller=alice, body={"name": "after"})
    profile = users_api("PATCH", "/users/me", caller=alice, body={"display_name": "ghost"})
    me = users_api("GET", "/users/me", caller=alice)
    # THEN each is refused as a revoked sign-in, and nothing was written
    for reply in (created, profile, me):
        assert reply.status == 401, reply.body
        assert reply.body["detail"] == "this sign-in was revoked; sign in again"
    assert database["sessions"].count_documents({"owner_id": alice.id}) == 0
    assert database["users"].count_documents({}) == 0


def test_a_revoked_sign_in_cannot_close_the_account(
    alice: User, database: Database[dict[str, Any]], store_redis: resp.Redis
) -> None:
    # GIVEN alice's sign-in was revoked (signed out everywhere) and she has a session, while
    # API Gateway may still serve the Allow it cached for her token
    store = sign_ins(database, store_redis)
    store.issue(alice.id, alice.jti, alice.session_id)
    session = sessions_api("POST", "/sessions", caller=alice, body={"name": "kept"}).body
    store.revoke_user(alice.id)
    # WHEN that token asks to close the account
    reply = users_api("DELETE", "/users/me", caller=alice)
    # THEN it is the 401 of a revoked sign-in, and the profile and the session stay as they were
    assert reply.status == 401, reply.body
    assert reply.body["detail"] == "this sign-in was revoked; sign in again"
    assert stored(database["users"], alice.id)["_id"] == alice.id
    assert stored(database["sessions"], session["id"])["status"] == "pending"


def test_a_session_created_while_the_account_closes_undoes_itself(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN the account is already deleted but its sign-ins are not revoked yet (a closure half
    # way, or a create racing it)
    database["users"].delete_one({"_id": alice.id})
    # WHEN a session is created for it THEN it is refused and not kept
    reply = sessions_api("POST", "/sessions", caller=alice, body={"name": "racing"})
    assert reply.status == 401
    assert reply.body["detail"] == "the account was closed"
    assert database["sessions"].count_documents({}) == 0


def test_the_last_admin_cannot_close_their_account(
    admin: User,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    sign_ins(database, store_redis).issue(admin.id, admin.jti, admin.session_id)
    reply = users_api("DELETE", "/users/me", caller=admin)
    assert reply.status == 409
    assert stored(database["users"], admin.id)["role"] == "admin"
    assert not revocations_on(store_redis, database).is_revoked(admin.session_id)


def test_an_admin_who_is_not_the_last_may_leave(
    admin: User, database: Database[dict[str, Any]]
) -> None:
    leaving = add_user(database, role="admin")
    assert users_api("DELETE", "/users/me", caller=leaving).status == 204
    assert [user["_id"] for user in database["users"].find({"role": "admin"})] == [admin.id]


def test_mongodb_down_is_503_and_the_retry_with_the_same_token_completes_the_closure(
    alice: User,
    database: Database[dict[str, Any]],
    dead_database: Database[dict[str, Any]],
    store_redis: resp.Redis,
) -> None:
    (session,) = start_sessions(alice, 1)
    token = sign_ins(database, store_redis).issue(alice.id, alice.jti, alice.session_id)
    users_api("GET", "/users/me", caller=alice)  # the Redis copy of revocations is loaded
    # GIVEN MongoDB is down: the closure fails before changing anything
    with database_for("users", "sessions", database=dead_database):
        reply = users_api("DELETE", "/users/me", caller=alice)
    assert reply.status == 503
    assert reply.headers["content-type"] == "application/problem+json"
    assert database["users"].find_one({"_id": alice.id}) is not None
    assert stored(database["sessions"], session)["status"] == "active"
    assert stored(database["tokens"], hash_refresh_token(token))["revoked_at"] is None
    # WHEN it is back and the client retries with the same token THEN the closure completes
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    assert stored(database["sessions"], session)["status"] == "ended"
    assert database["users"].find_one({"_id": alice.id}) is None
    assert stored(database["tokens"], hash_refresh_token(token))["revoked_at"] is not None


def test_a_retry_after_the_profile_was_already_deleted_finishes_the_job(
    alice: User,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN an earlier attempt got as far as deleting the profile, then failed
    (session,) = start_sessions(alice, 1)
    sign_ins(database, store_redis).issue(alice.id, alice.jti, alice.session_id)
    database["users"].delete_one({"_id": alice.id})
    # WHEN the client retries THEN the remaining steps complete
    assert users_api("DELETE", "/users/me", caller=alice).status == 204
    assert stored(database["sessions"], session)["status"] == "ended"
    assert revocations_on(store_redis, database).is_revoked(alice.session_id)


def test_an_admins_retry_after_the_profile_was_already_deleted_finishes_the_job(
    admin: User,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN an admin (not the last) whose earlier closure got as far as deleting the profile
    leaving = add_user(database, role="admin")
    (session,) = start_sessions(leaving, 1)
    sign_ins(database, store_redis).issue(leaving.id, leaving.jti, leaving.session_id)
    database["users"].delete_one({"_id": leaving.id})
    # WHEN the client retries with the same (admin) token, as the closure's 503 invites
    reply = users_api("DELETE", "/users/me", caller=leaving)
    # THEN the remaining steps complete, as for anyone: closing needs no admin power
    assert reply.status == 204, reply.body
    assert stored(database["sessions"], session)["status"] == "ended"
    assert revocations_on(store_redis, database).is_revoked(leaving.session_id)
