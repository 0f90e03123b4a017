"""Refresh tokens: opaque, hashed at rest, single use, rotated, reuse revokes the family."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo.database import Database

from lucid.auth.keys import KeyRing
from lucid.auth.refresh import RefreshTokenStore, revoke_user_families
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.errors import InvalidTokenError, RefreshTokenReuseError
from lucid_edge.local import in_memory_database
from tests.utils.datastore import atomic_writes


@pytest.fixture
def database() -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes():
        yield in_memory_database()


@pytest.fixture
def store(database: Database[dict[str, Any]]) -> RefreshTokenStore:
    return RefreshTokenStore(database, timedelta(days=14))


def test_token_is_random_256_bits_and_stored_only_hashed(
    store: RefreshTokenStore, database: Database[dict[str, Any]]
) -> None:
    token = store.issue("u1", "jti-1")
    assert len(token) == 43
    assert token.count(".") == 0
    stored = database["tokens"].find_one()
    assert stored is not None
    assert stored["_id"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(stored)
    assert stored["expires_at"] - stored["created_at"] == timedelta(days=14)
    names = {index["name"] for index in database["tokens"].list_indexes()}
    assert {"expires_ttl", "family", "user", "access_jti"} <= names


def test_token_is_single_use_and_reuse_revokes_the_family(store: RefreshTokenStore) -> None:
    # GIVEN a sign-in (family) whose first token was rotated once
    first = store.issue("u1", "jti-1")
    grant = store.use(first)
    second = store.issue("u1", "jti-2", family_id=grant.family_id)
    # WHEN the first token comes back (stolen copy)
    with pytest.raises(RefreshTokenReuseError):
        store.use(first)
    # THEN the legitimate successor is revoked too
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(second)


def test_token_inserted_after_revocation_is_refused(store: RefreshTokenStore) -> None:
    # GIVEN a family revoked while a rotation was in flight (new token inserted afterwards)
    first = store.issue("u1", "jti-1")
    grant = store.use(first)
    store.revoke_family(grant.family_id)
    late = store.issue("u1", "jti-2", family_id=grant.family_id)
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(late)


def test_two_concurrent_refreshes_exactly_one_succeeds(store: RefreshTokenStore) -> None:
    token = store.issue("u1", "jti-1")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []
    successors: list[str] = []

    def attempt() -> None:
        barrier.wait(timeout=10)
        try:
            grant = store.use(token)
            outcomes.append("ok")
            successors.append(store.issue("u1", "jti-2", family_id=grant.family_id))
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
    access = TokenService(settings, KeyRing(settings)).issue("u1", "T", "user").token
    with pytest.raises(InvalidTokenError, match="not a refresh token"):
        store.use(access)


def test_unknown_and_expired_tokens_are_refused(database: Database[dict[str, Any]]) -> None:
    store = RefreshTokenStore(database, timedelta(days=14))
    with pytest.raises(InvalidTokenError, match="unknown"):
        store.use("A" * 43)
    expired = RefreshTokenStore(database, -timedelta(seconds=1)).issue("u1", "jti-1")
    # The TTL index removes it (mongomock at once, MongoDB within ~60 s): then it is unknown...
    with pytest.raises(InvalidTokenError, match="unknown"):
        store.use(expired)
    # ...and before the TTL monitor has run, the expiry itself refuses it.
    database["tokens"].drop_index("expires_ttl")
    expired = RefreshTokenStore(database, -timedelta(seconds=1)).issue("u1", "jti-2")
    with pytest.raises(InvalidTokenError, match="expired"):
        store.use(expired)


def test_logout_and_account_closure_revoke(
    store: RefreshTokenStore, database: Database[dict[str, Any]]
) -> None:
    by_logout = store.issue("u1", "jti-1")
    other_device = store.issue("u1", "jti-2")
    someone_else = store.issue("u2", "jti-3")
    store.revoke_family_of_access_token("jti-1")
    store.revoke_family_of_access_token("jti-unknown")
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(by_logout)
    revoke_user_families(database, "u1")
    with pytest.raises(InvalidTokenError, match="revoked"):
        store.use(other_device)
    assert store.use(someone_else).user_id == "u2"
