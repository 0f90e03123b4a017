"""Refresh tokens: opaque, hashed at rest, single use, rotated, reuse revokes the family."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.auth.keys import KeyRing
from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.revocation import RevocationList
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.errors import InvalidTokenError, RefreshTokenReuseError, UnknownNonceError
from lucid.identity import Role
from lucid.store import resp
from lucid.store.documents import new_id
from lucid_edge.local import in_memory_database
from tests.utils.datastore import atomic_writes, revocations_on


@pytest.fixture
def database() -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes():
        yield in_memory_database()


@pytest.fixture
def revocations(store_redis: resp.Redis, database: Database[dict[str, Any]]) -> RevocationList:
    return revocations_on(store_redis, database)


@pytest.fixture
def store(database: Database[dict[str, Any]], revocations: RevocationList) -> RefreshTokenStore:
    return RefreshTokenStore(database, timedelta(days=14), revocations)


def test_token_is_random_256_bits_and_stored_only_hashed(
    store: RefreshTokenStore, database: Database[dict[str, Any]]
) -> None:
    family = new_id()
    token = store.issue("u1", "jti-1", family)
    assert len(token) == 43
    assert token.count(".") == 0
    stored = database["tokens"].find_one()
    assert stored is not None
    assert stored["_id"] == hashlib.sha256(token.encode()).hexdigest()
    # AND the record ties it to its sign-in, its user and the access token issued with it
    assert (stored["family_id"], stored["user_id"], stored["access_jti"]) == (family, "u1", "jti-1")
    assert token not in str(stored)
    assert stored["expires_at"] - stored["created_at"] == timedelta(days=14)
    names = {index["name"] for index in database["tokens"].list_indexes()}
    assert {"expires_ttl", "family", "user", "revoked"} <= names
    # AND the access jti is kept for whoever reads the record, not indexed: nothing queries it,
    # and an index would cost a write per sign-in and refresh
    assert "access_jti" not in names


def test_a_sign_in_nonce_starts_one_sign_in_only(
    store: RefreshTokenStore, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a sign-in started with a nonce (its first refresh token carries it)
    assert store.nonce_spent("n-1") is False
    store.issue("u1", "jti-1", new_id(), signin_nonce="n-1")
    assert store.nonce_spent("n-1") is True
    # WHEN another login with the same nonce gets past the read (a race) and stores its token
    # THEN the unique index refuses it and nothing of it is stored
    with pytest.raises(UnknownNonceError, match="already used"):
        store.issue("u1", "jti-2", new_id(), signin_nonce="n-1")
    assert database["tokens"].count_documents({"access_jti": "jti-2"}) == 0
    # AND tokens without a nonce (rotations) are never refused by it
    for jti in ("jti-3", "jti-4"):
        store.issue("u1", jti, new_id())
    assert database["tokens"].count_documents({}) == 3


def test_token_is_single_use_and_reuse_revokes_the_family(
    store: RefreshTokenStore, revocations: RevocationList
) -> None:
    # GIVEN a sign-in (family) whose first token was rotated once
    family = new_id()
    first = store.issue("u1", "jti-1", family)
    grant = store.use(first)
    assert grant.family_id == family
    second = store.issue("u1", "jti-2", grant.family_id)
    assert not revocations.is_revoked(family)
    # WHEN the first token comes back (stolen copy)
    with pytest.raises(RefreshTokenReuseError):
        store.use(first)
    # THEN the legitimate successor is revoked too, and so is the sign-in's every access token
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(second)
    assert revocations.is_revoked(family)


def test_token_inserted_after_revocation_is_refused(
    store: RefreshTokenStore, revocations: RevocationList, redis_client: redis.Redis
) -> None:
    # GIVEN a family revoked while a rotation was in flight (new token inserted afterwards)
    first = store.issue("u1", "jti-1", new_id())
    grant = store.use(first)
    store.revoke_family(grant.family_id)
    redis_client.flushdb()  # only the late rotation's own revocation can bring it back
    late = store.issue("u1", "jti-2", grant.family_id)
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(late)
    assert redis_client.hget("lucid:local:revoked-sign-ins", grant.family_id) is not None


def test_revoking_a_revoked_sign_in_again_keeps_the_time_it_was_revoked(
    store: RefreshTokenStore, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a sign-in revoked once (a logout)
    family = new_id()
    store.issue("u1", "jti-1", family)
    store.revoke_family(family)
    first = database["tokens"].find_one({"family_id": family})
    assert first is not None
    assert first["revoked_at"] is not None
    # WHEN it is revoked again later (a second logout, a reuse of its spent token)
    time.sleep(0.01)
    store.revoke_family(family)
    # THEN the record still says when it was first revoked
    again = database["tokens"].find_one({"family_id": family})
    assert again is not None
    assert again["revoked_at"] == first["revoked_at"]


def test_two_concurrent_refreshes_exactly_one_succeeds(store: RefreshTokenStore) -> None:
    token = store.issue("u1", "jti-1", new_id())
    barrier = threading.Barrier(6)
    outcomes: list[str] = []
    successors: list[str] = []

    def attempt() -> None:
        barrier.wait(timeout=10)
        try:
            grant = store.use(token)
            outcomes.append("ok")
            successors.append(store.issue("u1", "jti-2", grant.family_id))
        except RefreshTokenReuseError:
            outcomes.append("reuse")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["ok"] + ["reuse"] * 5
    # the race looked like reuse: the winner's new token dies with its family
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(successors[0])


def test_access_token_is_not_a_refresh_token(store: RefreshTokenStore) -> None:
    settings = Settings(STAGE="local", JWT_SECRET_KEY="refresh-test-key-0123456789abcdef012345")
    access = TokenService(settings, KeyRing(settings)).issue("u1", "T", Role.USER, new_id()).token
    with pytest.raises(InvalidTokenError, match="not a refresh token"):
        store.use(access)


def test_unknown_and_expired_tokens_are_refused(
    database: Database[dict[str, Any]], revocations: RevocationList
) -> None:
    store = RefreshTokenStore(database, timedelta(days=14), revocations)
    past = RefreshTokenStore(database, -timedelta(seconds=1), revocations)
    with pytest.raises(InvalidTokenError, match="unknown"):
        store.use("A" * 43)
    expired = past.issue("u1", "jti-1", new_id())
    # The TTL index removes it (mongomock at once, MongoDB within ~60 s): then it is unknown...
    with pytest.raises(InvalidTokenError, match="unknown"):
        store.use(expired)
    # ...and before the TTL monitor has run, the expiry itself refuses it.
    database["tokens"].drop_index("expires_ttl")
    expired = past.issue("u1", "jti-2", new_id())
    with pytest.raises(InvalidTokenError, match="expired"):
        store.use(expired)


def test_logout_and_account_closure_revoke_sign_ins(
    store: RefreshTokenStore, revocations: RevocationList
) -> None:
    by_logout, other_device, someone_else = new_id(), new_id(), new_id()
    tokens = {
        by_logout: store.issue("u1", "jti-1", by_logout),
        other_device: store.issue("u1", "jti-2", other_device),
        someone_else: store.issue("u2", "jti-3", someone_else),
    }
    # WHEN one sign-in logs out THEN it alone is revoked
    store.revoke_family(by_logout)
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(tokens[by_logout])
    assert [revocations.is_revoked(s) for s in tokens] == [True, False, False]
    # WHEN the account closes THEN every sign-in of the user is revoked, nobody else's
    assert store.revoke_user("u1") == 1  # the logged-out sign-in was revoked already
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(tokens[other_device])
    assert [revocations.is_revoked(s) for s in tokens] == [True, True, False]
    assert store.use(tokens[someone_else]).user_id == "u2"
