"""Revoked sign-ins: the Redis copy (real redis-server) over the MongoDB record (mongomock), and
every way the copy can be missing, stale or unreachable."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.auth.authorizer import authorize
from lucid.auth.keys import KeyRing
from lucid.auth.revocation import (
    MERGE_SCRIPT,
    SYNC_SECONDS,
    RevocationList,
    mongodb_record,
    synced_field,
)
from lucid.auth.revocation_record import MongoRevocationRecord
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.errors import ServiceUnavailableError
from lucid.identity import Role
from lucid.store import resp
from lucid.store.documents import new_id
from lucid.store.keys import revocations_key
from lucid.store.redis_client import build_redis
from lucid_edge.local import free_port, in_memory_database
from tests.utils.auth_flow import authorizer_event
from tests.utils.datastore import CountingRecord
from tests.utils.layer_redis import layer_redis, unreachable_redis
from tests.utils.metrics import emitted, flushed

LIFETIME = 900  # seconds an access token lives
KEY = revocations_key("local")  # the suite's stage (tests/conftest.py)
RELOAD_LOCK = KEY + ":reload"
ADDRESS = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database() -> Database[dict[str, Any]]:
    return in_memory_database()


@pytest.fixture
def record(database: Database[dict[str, Any]]) -> CountingRecord:
    return CountingRecord(database)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def revocations(store_redis: resp.Redis, record: CountingRecord, clock: Clock) -> RevocationList:
    return RevocationList(store_redis, lambda: record, token_lifetime_seconds=LIFETIME, clock=clock)


@pytest.fixture
def dead_redis() -> Iterator[resp.Redis]:
    client = unreachable_redis(free_port())
    yield client
    client.close()


def mark_of(client: redis.Redis) -> str:
    """The field of the copy's mark in the redis-server process `client` speaks to."""
    return synced_field(client.info("server")["run_id"])


def revoke_in_record(database: Database[dict[str, Any]], sid: str, at: datetime) -> None:
    """What `RefreshTokenStore` writes first when it revokes a sign-in."""
    database["tokens"].insert_one({"_id": new_id(), "family_id": sid, "revoked_at": at})


def test_a_remembered_revocation_is_answered_from_redis_alone(
    revocations: RevocationList, record: CountingRecord
) -> None:
    # GIVEN the copy was loaded once (empty record)
    assert revocations.is_revoked("s-1") is False
    asked = record.asked
    # WHEN a sign-in is revoked and remembered THEN checks answer from Redis, not MongoDB
    revocations.remember({"s-1": datetime.now(UTC)})
    assert revocations.is_revoked("s-1") is True
    assert revocations.is_revoked("s-2") is False
    assert record.asked == asked


def test_a_lost_copy_is_reloaded_from_the_record_by_the_first_check(
    revocations: RevocationList,
    record: CountingRecord,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
) -> None:
    # GIVEN two sign-ins revoked in the record, one too long ago to matter, and Redis empty
    now = datetime.now(UTC)
    revoke_in_record(database, "recent", now - timedelta(minutes=5))
    revoke_in_record(database, "ancient", now - timedelta(hours=2))
    # WHEN the first check runs THEN it reloads the copy and answers from it
    assert revocations.is_revoked("recent") is True
    assert record.asked == 1
    stored = redis_client.hgetall(KEY)
    assert set(stored) == {b"recent", mark_of(redis_client).encode()}
    # AND the entry lasts the access-token lifetime and the leeway past the revocation
    until = float(stored[b"recent"])
    # (abs=1: approx's default relative tolerance is ~30 minutes at epoch-second magnitudes)
    expected = (now - timedelta(minutes=5)).timestamp() + LIFETIME + 30
    assert until == pytest.approx(expected, abs=1)
    # AND later checks need no MongoDB
    assert revocations.is_revoked("ancient") is False
    assert revocations.is_revoked("recent") is True
    assert record.asked == 1


def test_a_due_copy_is_reloaded_by_one_caller_while_the_others_trust_it(
    revocations: RevocationList,
    record: CountingRecord,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    clock: Clock,
) -> None:
    # GIVEN a loaded copy, then a revocation that reached MongoDB but not Redis
    assert revocations.is_revoked("missed") is False
    revoke_in_record(database, "missed", datetime.now(UTC))
    assert revocations.is_revoked("missed") is False  # the copy does not know yet
    # WHEN the copy is due for a reload while another caller holds the reload lock
    clock.now += SYNC_SECONDS + 1
    redis_client.set(RELOAD_LOCK, "another")
    asked = record.asked
    # THEN this caller answers from the copy, without MongoDB
    assert revocations.is_revoked("missed") is False
    assert record.asked == asked
    # WHEN the lock is free THEN the next check reloads and the missed revocation holds
    redis_client.delete(RELOAD_LOCK)
    assert revocations.is_revoked("missed") is True
    assert redis_client.exists(RELOAD_LOCK) == 0


def test_a_revocation_that_missed_redis_holds_once_the_copy_is_30_seconds_old(
    revocations: RevocationList, database: Database[dict[str, Any]], clock: Clock
) -> None:
    # GIVEN a copy loaded now, then a revocation that reached MongoDB but not Redis
    assert revocations.is_revoked("missed") is False
    revoke_in_record(database, "missed", datetime.fromtimestamp(clock.now, UTC))
    clock.now += 29
    assert revocations.is_revoked("missed") is False  # the copy vouches for 30 s
    # WHEN the copy is 30 s old (the README's bound) THEN the check reloads it and refuses
    clock.now += 1
    assert revocations.is_revoked("missed") is True


def test_a_reload_that_brings_revocations_says_so_once_and_a_quiet_one_says_nothing(
    revocations: RevocationList,
    database: Database[dict[str, Any]],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN an empty record WHEN the copy is loaded THEN nothing is logged (every 30 s otherwise)
    with caplog.at_level(logging.INFO, logger="lucid.auth.revocation"):
        assert revocations.is_revoked("s-1") is False
    assert caplog.records == []
    # WHEN a later reload brings two revocations THEN one line says how many
    now = datetime.fromtimestamp(clock.now, UTC)
    revoke_in_record(database, "s-1", now)
    revoke_in_record(database, "s-2", now)
    clock.now += SYNC_SECONDS
    with caplog.at_level(logging.INFO, logger="lucid.auth.revocation"):
        assert revocations.is_revoked("s-1") is True
    [line] = caplog.records
    assert (line.getMessage(), line.__dict__["revoked"]) == ("revocations reloaded from MongoDB", 2)


class SlowRecord(CountingRecord):
    """The record, taking `seconds` of the clock to answer a reload."""

    def __init__(self, database: Database[dict[str, Any]], clock: Clock, seconds: float) -> None:
        super().__init__(database)
        self.clock, self.seconds = clock, seconds

    def revoked_since(self, since: datetime) -> dict[str, datetime]:
        self.clock.now += self.seconds
        return super().revoked_since(since)


@pytest.mark.parametrize(("seconds", "logged"), [(1.0, 0), (1.5, 1)])
def test_a_reload_slower_than_a_second_is_logged_even_when_it_brings_nothing(
    store_redis: resp.Redis,
    database: Database[dict[str, Any]],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    seconds: float,
    logged: int,
) -> None:
    record = SlowRecord(database, clock, seconds)
    revocations = RevocationList(
        store_redis, lambda: record, token_lifetime_seconds=LIFETIME, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="lucid.auth.revocation"):
        assert revocations.is_revoked("s-1") is False
    assert caplog.messages == ["revocations reloaded from MongoDB"] * logged


class OutlivedLockRecord(CountingRecord):
    """The record, answering a reload so slowly that the reload lock expired meanwhile and
    another caller took it (RELOAD_LOCK_MS, played here by overwriting the lock)."""

    def __init__(self, database: Database[dict[str, Any]], client: redis.Redis) -> None:
        super().__init__(database)
        self.client = client

    def revoked_since(self, since: datetime) -> dict[str, datetime]:
        assert self.client.delete(RELOAD_LOCK) == 1  # this caller's lock expired...
        self.client.set(RELOAD_LOCK, "another")  # ...and the next reloader took it
        return super().revoked_since(since)


def test_a_reload_outliving_its_lock_leaves_the_next_reloaders_lock_alone(
    redis_client: redis.Redis, store_redis: resp.Redis, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a reload that takes longer than the reload lock lasts
    record = OutlivedLockRecord(database, redis_client)
    revocations = RevocationList(store_redis, lambda: record, token_lifetime_seconds=LIFETIME)
    # WHEN it finishes
    assert revocations.is_revoked("s-1") is False
    # THEN the lock the next reloader holds is still there: releasing it would let a third
    # caller reload alongside
    assert redis_client.get(RELOAD_LOCK) == b"another"


def test_a_copy_marked_complete_in_another_redis_process_is_reloaded_before_it_vouches(
    revocations: RevocationList,
    record: CountingRecord,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    clock: Clock,
) -> None:
    # GIVEN a copy that vouches for itself, but under the mark of another server process (it was
    # restored from a snapshot, or a promoted replica serves it), and the mark 1a11ddf wrote
    revoke_in_record(database, "missed", datetime.fromtimestamp(clock.now, UTC))
    other = synced_field("0" * 40)
    redis_client.hset(KEY, mapping={other: clock.now + SYNC_SECONDS, "~synced-until": clock.now})
    # WHEN a sign-in revoked after that copy was made is checked
    # THEN the copy is reloaded first and the sign-in refused
    assert revocations.is_revoked("missed") is True
    assert record.asked == 1
    assert float(redis_client.hget(KEY, mark_of(redis_client)) or 0) == clock.now + SYNC_SECONDS
    # AND the next reload drops the other marks, which nobody reads, once they are past
    clock.now += SYNC_SECONDS + 1
    assert revocations.is_revoked("other") is False
    assert set(redis_client.hgetall(KEY)) == {b"missed", mark_of(redis_client).encode()}


def test_while_another_caller_reloads_a_lost_copy_the_record_answers(
    revocations: RevocationList,
    record: CountingRecord,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
) -> None:
    revoke_in_record(database, "s-1", datetime.now(UTC))
    redis_client.set(RELOAD_LOCK, "another")
    assert revocations.is_revoked("s-1") is True
    assert revocations.is_revoked("s-2") is False
    assert record.asked == 2  # once per check: the copy cannot vouch for anything yet
    assert redis_client.hget(KEY, mark_of(redis_client)) is None


def test_without_redis_every_check_asks_the_record(
    dead_redis: resp.Redis,
    record: CountingRecord,
    database: Database[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    revocations = RevocationList(dead_redis, lambda: record, token_lifetime_seconds=LIFETIME)
    revoke_in_record(database, "s-1", datetime.now(UTC))
    flushed()  # what earlier tests recorded outside any request
    capsys.readouterr()
    assert revocations.is_revoked("s-1") is True
    assert revocations.is_revoked("s-2") is False
    assert record.asked == 2
    # AND remembering a revocation is no error (the record already holds it)
    with caplog.at_level(logging.WARNING, logger="lucid.auth.revocation"):
        revocations.remember({"s-3": datetime.now(UTC)})
    assert caplog.messages == ["revocation not copied to Redis (ConnectionError)"]
    # AND the dashboard's metrics count both (README: "checks MongoDB answered while Redis did
    # not", and a revocation the copy missed)
    flushed()
    counted = emitted(capsys.readouterr().out)
    assert counted.get("RevocationCheckWithoutRedis") == 2
    assert counted.get("RevocationNotCopied") == 1


def test_without_redis_or_mongodb_nobody_says_not_revoked(
    dead_redis: resp.Redis, dead_db: Database[dict[str, Any]]
) -> None:
    dead = MongoRevocationRecord(dead_db)
    revocations = RevocationList(dead_redis, lambda: dead, token_lifetime_seconds=LIFETIME)
    with pytest.raises(ServiceUnavailableError):
        revocations.is_revoked("s-1")


def test_a_lost_copy_with_mongodb_down_is_an_error_and_a_due_one_is_trusted(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
    clock: Clock,
    dead_db: Database[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    revocations = RevocationList(
        store_redis,
        lambda: MongoRevocationRecord(dead_db),
        token_lifetime_seconds=LIFETIME,
        clock=clock,
    )
    # GIVEN the copy is lost and MongoDB is down THEN a check is an error, not a "no"
    with pytest.raises(ServiceUnavailableError):
        revocations.is_revoked("s-1")
    # AND the failed reloader keeps the lock until it expires: while MongoDB is down, one
    # caller per lock period waits out its timeout, not every caller
    assert 0 < redis_client.pttl(RELOAD_LOCK) <= 10_000  # it does expire, within 10 s
    redis_client.delete(RELOAD_LOCK)
    # GIVEN a copy that was complete a moment ago and is merely due THEN it still answers
    revocations.remember({"s-1": datetime.now(UTC)})
    redis_client.hset(KEY, mark_of(redis_client), clock.now - 1)
    assert revocations.is_revoked("s-1") is True
    with caplog.at_level(logging.WARNING, logger="lucid.auth.revocation"):
        assert revocations.is_revoked("s-2") is False  # the reload failed: the copy answered
    assert redis_client.exists(RELOAD_LOCK) == 1  # and the next checks will not retry at once
    # AND the operator is told the copy answered without its reload
    assert caplog.messages == ["revocations not reloaded: MongoDB is unavailable"]


def test_a_reload_keeps_the_later_deadline_and_drops_what_expired(
    revocations: RevocationList,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    clock: Clock,
) -> None:
    now = datetime.fromtimestamp(clock.now, UTC)
    # GIVEN the copy holds a later deadline than the record for one sign-in and a stale entry
    revocations.remember({"kept": now, "stale": now - timedelta(hours=1)})
    revoke_in_record(database, "kept", now - timedelta(minutes=10))
    # WHEN the copy is reloaded (it was never marked complete)
    assert revocations.is_revoked("other") is False
    stored = redis_client.hgetall(KEY)
    # THEN the later deadline stays and the expired entry is gone
    assert float(stored[b"kept"]) == pytest.approx(now.timestamp() + LIFETIME + 30, abs=1)
    assert b"stale" not in stored
    # AND an entry past its deadline no longer revokes
    clock.now += LIFETIME + 31
    redis_client.hset(KEY, mark_of(redis_client), clock.now + SYNC_SECONDS)
    assert revocations.is_revoked("kept") is False


def test_the_authorizers_record_is_the_process_mongodb() -> None:
    # The authorizer builds its record only on the slow path, from MONGODB_URI.
    record = mongodb_record()
    assert isinstance(record, MongoRevocationRecord)
    assert record.is_revoked(new_id()) is False


MERGE_SHA = hashlib.sha1(MERGE_SCRIPT.encode()).hexdigest()


class DyingRedis(resp.Redis):
    """A real client whose server "dies" at one command: `set` (the reload lock) or the reload
    itself (the merge script, run by `evalsha` or `eval`), after answering the HMGET that found
    the copy lost."""

    def __init__(self, uri: str, dies_at: tuple[str, ...]) -> None:
        super().__init__(layer_redis(uri).connection_pool)
        self.dies_at = dies_at

    def execute_command(self, *args: object) -> Any:
        command = str(args[0]).lower()
        if command in self.dies_at and (command == "set" or args[1] in (MERGE_SHA, MERGE_SCRIPT)):
            raise resp.ConnectionError("the server went away")
        return super().execute_command(*args)


@pytest.mark.parametrize("dies_at", [("set",), ("evalsha", "eval")], ids=["lock", "reload"])
def test_redis_dying_half_way_through_a_reload_leaves_the_answer_to_mongodb(
    redis_server: Any,
    redis_client: redis.Redis,
    record: CountingRecord,
    database: Database[dict[str, Any]],
    dies_at: tuple[str, ...],
) -> None:
    revoke_in_record(database, "s-1", datetime.now(UTC))
    client = DyingRedis(redis_server.uri, dies_at)
    try:
        revocations = RevocationList(client, lambda: record, token_lifetime_seconds=LIFETIME)
        assert revocations.is_revoked("s-1") is True
        assert revocations.is_revoked("s-2") is False
    finally:
        client.connection_pool.disconnect()  # close() leaves a pool it was given alone
    assert redis_client.exists(RELOAD_LOCK) == 0


def test_a_token_outliving_the_lifetime_revocations_are_kept_for_is_refused(
    store_redis: resp.Redis, database: Database[dict[str, Any]], record: CountingRecord
) -> None:
    # GIVEN TokenExpireMinutes lowered from 60 to 15, and a token issued just before (60 min)
    def settings(minutes: int) -> Settings:
        return Settings(STAGE="local", JWT_SECRET_KEY="k" * 40, TOKEN_EXPIRE_MINUTES=minutes)

    before, after = settings(60), settings(15)
    token = TokenService(before, KeyRing(before)).issue("u1", ADDRESS, Role.USER, "s-1").token
    # AND its sign-in revoked (logout) once every function has the new lifetime
    clock = Clock()
    revocations = RevocationList(
        store_redis, lambda: record, token_lifetime_seconds=60 * 15, clock=clock
    )
    revoked_at = datetime.fromtimestamp(clock.now, UTC)
    revoke_in_record(database, "s-1", revoked_at)
    revocations.remember({"s-1": revoked_at})
    # WHEN the authorizer decides 20 minutes later: the copy has let the revocation go, the token
    # still has 40 minutes to live
    clock.now += 20 * 60
    event = authorizer_event(f"Bearer {token}")
    decision = authorize(event, tokens=TokenService(after, KeyRing(after)), revocations=revocations)
    # THEN it is refused all the same: no token is accepted for longer than revocations are kept
    assert decision == {"isAuthorized": False}


def test_a_check_stays_one_round_trip_and_asks_which_server_once_per_connection(
    redis_server: Any, redis_client: redis.Redis, record: CountingRecord
) -> None:
    # GIVEN a function's client whose copy of the revocations is loaded
    client = build_redis(Settings(JWT_SECRET_KEY="k" * 40, REDIS_URI=redis_server.uri))
    revocations = RevocationList(client, lambda: record, token_lifetime_seconds=LIFETIME)
    try:
        assert revocations.is_revoked("s-0") is False
        before = redis_client.info("commandstats")
        # WHEN it checks twenty sign-ins
        for _ in range(20):
            assert revocations.is_revoked("s-1") is False
        after = redis_client.info("commandstats")
    finally:
        client.connection_pool.disconnect()

    def calls(stats: dict[str, Any], command: str) -> int:
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    # THEN Redis served twenty HMGETs and nothing else (the one INFO is this test's own)
    commands = {name.removeprefix("cmdstat_") for name in after}
    assert {
        c: calls(after, c) - calls(before, c)
        for c in commands
        if calls(after, c) > calls(before, c)
    } == {"hmget": 20, "info": 1}
