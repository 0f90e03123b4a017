"""Revocations and spent nonces across a Redis restart that restores older data: a real
redis-server saves a snapshot, is killed (-9) and started again from it; MongoDB is the
in-memory store (no MongoDB server exists on these machines)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.revocation import RevocationList
from lucid.auth.revocation_record import MongoRevocationRecord
from lucid.config import Settings
from lucid.errors import UnknownNonceError
from lucid.store import resp
from lucid.store.documents import new_id
from lucid.store.redis_client import build_redis
from lucid_edge.local import EmbeddedRedis, in_memory_database
from tests.shared.auth.test_signin import _service as sign_in_service
from tests.utils.datastore import CountingRecord, atomic_writes
from tests.utils.metrics import emitted, flushed
from tests.utils.redis_restore import kill_and_restore, snapshotting_redis
from tests.utils.tied import start_redis
from tests.utils.wallets import Wallet

LIFETIME = 900
KEY = "restore-test-key-0123456789abcdef0123456789"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    """The running server, in a list a test replaces it in when it restores it."""
    holder = [snapshotting_redis(tmp_path)]
    yield holder
    holder[0].stop()


@pytest.fixture
def database() -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes():
        yield in_memory_database()


def process_client(server: EmbeddedRedis) -> resp.Redis:
    """A client as a function builds it at its cold start."""
    return build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=server.uri))


def revocations_of(client: resp.Redis, record: MongoRevocationRecord) -> RevocationList:
    return RevocationList(client, lambda: record, token_lifetime_seconds=LIFETIME)


@dataclass
class Function:
    """A function's view of the revocations: its client, its copy loaded and complete, and two
    sign-ins (`revoked` is to be revoked, `kept` never is)."""

    record: CountingRecord
    client: resp.Redis
    revocations: RevocationList
    tokens: RefreshTokenStore
    revoked: str
    kept: str


@pytest.fixture
def function(server: list[EmbeddedRedis], database: Database[dict[str, Any]]) -> Iterator[Function]:
    record = CountingRecord(database)
    client = process_client(server[0])
    revocations = revocations_of(client, record)
    tokens = RefreshTokenStore(database, timedelta(days=14), revocations)
    revoked, kept = new_id(), new_id()
    for sid in (revoked, kept):
        tokens.issue(new_id(), new_id(), sid)
    assert revocations.is_revoked(revoked) is False
    yield Function(record, client, revocations, tokens, revoked, kept)
    client.connection_pool.disconnect()


def test_a_revocation_made_after_the_snapshot_holds_at_the_next_check_after_a_restore(
    server: list[EmbeddedRedis], database: Database[dict[str, Any]], function: Function
) -> None:
    # GIVEN a function whose copy of the revocations is loaded and complete (`function`)
    revocations, revoked, kept = function.revocations, function.revoked, function.kept
    # AND Redis saved a snapshot (the copy, vouching for itself, is in it)
    redis.Redis.from_url(server[0].uri).save()
    # WHEN one sign-in is revoked (logout) and Redis then dies and comes back from the snapshot
    function.tokens.revoke_family(revoked)
    assert revocations.is_revoked(revoked) is True
    server[0] = kill_and_restore(server[0])
    fresh_client = process_client(server[0])
    # THEN the very next check refuses the revoked sign-in and passes the other
    try:
        assert revocations.is_revoked(revoked) is True
        assert revocations.is_revoked(kept) is False
        # AND so does a process that never spoke to the old server (a new Lambda instance)
        fresh = revocations_of(fresh_client, MongoRevocationRecord(database))
        assert fresh.is_revoked(revoked) is True
        assert fresh.is_revoked(kept) is False
        # AND once reloaded the copy answers from Redis alone again
        asked = function.record.asked
        assert revocations.is_revoked(revoked) is True
        assert revocations.is_revoked(kept) is False
        assert function.record.asked == asked
    finally:
        fresh_client.connection_pool.disconnect()


def test_a_nonce_spent_after_the_snapshot_cannot_be_spent_again_after_a_restore(
    server: list[EmbeddedRedis],
    database: Database[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN two wallets with a challenge each, and Redis saved a snapshot (both nonces live in it)
    client = process_client(server[0])
    service = sign_in_service(client, database)  # as the auth function builds it
    first, second = Wallet(), Wallet()
    spent, unused = service.challenge(first.address), service.challenge(second.address)
    redis.Redis.from_url(server[0].uri).save()
    # WHEN the first wallet signs in, and Redis then dies and comes back from the snapshot
    signed = (first.address, spent.message, first.sign(spent.message))
    service.login(*signed)
    user_before = database["users"].find_one({"address": first.address})
    tokens_before = database["tokens"].count_documents({})
    server[0] = kill_and_restore(server[0])
    flushed()  # what earlier tests recorded outside any request
    capsys.readouterr()
    try:
        # THEN the same signed message cannot sign in again (the nonce is live in Redis again)
        with pytest.raises(UnknownNonceError, match="already used"):
            service.login(*signed)
        # AND the replay is counted: the README's SignInNonceReplayed metric
        flushed()
        assert emitted(capsys.readouterr().out).get("SignInNonceReplayed") == 1
        # AND the refused replay wrote nothing: no token, the user untouched
        assert database["tokens"].count_documents({}) == tokens_before
        assert database["users"].find_one({"address": first.address}) == user_before
        # AND a challenge issued before the snapshot and never used still signs its wallet in
        service.login(second.address, unused.message, second.sign(unused.message))
        assert database["users"].count_documents({}) == 2
    finally:
        client.connection_pool.disconnect()


def test_a_promoted_replica_that_lagged_forgets_no_revocation(
    server: list[EmbeddedRedis], function: Function
) -> None:
    # GIVEN a replica of the server, in step with it once the copy was loaded on the primary
    revocations, revoked, kept = function.revocations, function.revoked, function.kept
    replica = start_redis()
    replica_client = process_client(replica)
    direct = redis.Redis.from_url(replica.uri, decode_responses=True)
    on_primary = redis.Redis.from_url(server[0].uri, decode_responses=True)
    try:
        direct.replicaof("127.0.0.1", server[0].port)
        key = revocations.key
        deadline = time.monotonic() + 10
        while direct.hgetall(key) != on_primary.hgetall(key):
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.01)
        marks = {str(field) for field in direct.hkeys(key)} - {revoked, kept}
        # WHEN it is promoted before the primary's next writes reach it (it lags), and the
        # sign-in is revoked on the primary meanwhile
        direct.replicaof("NO", "ONE")
        function.tokens.revoke_family(revoked)
        # THEN a function that now reaches the promoted replica refuses the revoked sign-in
        on_replica = revocations_of(replica_client, function.record)
        assert on_replica.is_revoked(revoked) is True
        assert on_replica.is_revoked(kept) is False
        # AND the replica had held the primary's mark, not one of its own (scripts are
        # replicated by their effects: a replica never runs the script's INFO itself)
        assert marks == {"~synced-until@" + on_primary.info("server")["run_id"]}
    finally:
        replica_client.connection_pool.disconnect()
        direct.close()
        on_primary.close()
        replica.stop()
