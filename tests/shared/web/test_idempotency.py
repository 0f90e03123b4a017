"""The idempotency store on the real test Redis: claim, replay, release, wait, expiry, outage."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import redis

from lucid.errors import ConflictError, ServiceUnavailableError, ValidationFailedError
from lucid.store import resp
from lucid.web.idempotency import IdempotencyStore, StoredResponse, fingerprint
from lucid_edge.local import free_port
from tests.utils.layer_redis import unreachable_redis


def created(n: int) -> StoredResponse:
    return StoredResponse(201, {"n": n}, {"Location": f"/things/{n}"})


def test_fingerprint_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_first_run_produces_and_a_retry_replays(store_redis: resp.Redis) -> None:
    store = IdempotencyStore(store_redis, ttl_seconds=60)
    calls: list[int] = []

    def produce() -> StoredResponse:
        calls.append(1)
        return created(len(calls))

    first = store.run("s", "k", "fp", produce)
    again = store.run("s", "k", "fp", produce)
    assert first == (created(1), False)
    assert again == (created(1), True)
    assert len(calls) == 1


def test_a_failed_run_releases_the_key(store_redis: resp.Redis) -> None:
    store = IdempotencyStore(store_redis, ttl_seconds=60)

    def fail() -> StoredResponse:
        raise ServiceUnavailableError("down")

    with pytest.raises(ServiceUnavailableError):
        store.run("s", "k", "fp", fail)
    assert store.run("s", "k", "fp", lambda: created(2)) == (created(2), False)


def test_a_retry_during_a_slow_first_run_waits_and_replays(store_redis: resp.Redis) -> None:
    store = IdempotencyStore(store_redis, ttl_seconds=60, wait_seconds=3)
    started = threading.Event()
    results: list[tuple[StoredResponse, bool]] = []

    def slow() -> StoredResponse:
        started.set()
        time.sleep(0.2)
        return created(1)

    worker = threading.Thread(target=lambda: results.append(store.run("s", "k", "fp", slow)))
    worker.start()
    started.wait(2)
    replay = store.run("s", "k", "fp", lambda: created(99))
    worker.join(5)
    assert replay == (created(1), True)
    assert results == [(created(1), False)]


def test_a_retry_gives_up_with_409_when_the_first_run_takes_too_long(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    store = IdempotencyStore(store_redis, ttl_seconds=60, wait_seconds=0.05)
    redis_client.set(
        "lucid:local:idem:s:" + hashlib.sha256(b"k").hexdigest(),
        '{"state": "running", "fp": "fp", "owner": "other"}',
        ex=10,
    )
    with pytest.raises(ConflictError) as caught:
        store.run("s", "k", "fp", lambda: created(1))
    assert caught.value.headers == {"Retry-After": "1"}


def test_same_key_with_another_body_is_422(store_redis: resp.Redis) -> None:
    store = IdempotencyStore(store_redis, ttl_seconds=60)
    store.run("s", "k", "fp-1", lambda: created(1))
    with pytest.raises(ValidationFailedError, match="different request body"):
        store.run("s", "k", "fp-2", lambda: created(2))


def test_keys_expire_after_the_ttl(store_redis: resp.Redis) -> None:
    store = IdempotencyStore(store_redis, ttl_seconds=1)
    store.run("s", "k", "fp", lambda: created(1))
    time.sleep(1.1)
    assert store.run("s", "k", "fp", lambda: created(2)) == (created(2), False)


def test_redis_down_is_503() -> None:
    dead = unreachable_redis(free_port())
    try:
        with pytest.raises(ServiceUnavailableError, match="idempotency store"):
            IdempotencyStore(dead, ttl_seconds=60).run("s", "k", "fp", lambda: created(1))
    finally:
        dead.close()


def test_a_response_is_still_answered_when_it_cannot_be_recorded(
    redis_client: redis.Redis, store_redis: resp.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN Redis accepts the claim, then refuses writes (out of memory) when the result is stored
    store = IdempotencyStore(store_redis, ttl_seconds=60)

    def produce_then_fill_redis() -> StoredResponse:
        redis_client.config_set("maxmemory", 1)
        return created(1)

    try:
        # THEN the caller still gets the created resource (a 503 would invite a duplicate)
        assert store.run("s", "k", "fp", produce_then_fill_redis) == (created(1), False)
        # AND the operator is told that this key will not replay
        assert [
            (record.levelname, record.getMessage())
            for record in caplog.records
            if record.name == "lucid.web.idempotency"
        ] == [("WARNING", "could not record an idempotent response; it will not be replayed")]
    finally:
        redis_client.config_set("maxmemory", 0)


def test_an_abandoned_claim_is_taken_over_when_its_lease_ends(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    # GIVEN a first attempt that claimed the key and died without releasing it (1 s lease)
    redis_client.set(
        "lucid:local:idem:s:" + hashlib.sha256(b"k").hexdigest(),
        '{"state": "running", "fp": "fp", "owner": "dead"}',
        ex=1,
    )
    # WHEN a retry waits long enough THEN it runs once the lease is over
    store = IdempotencyStore(store_redis, ttl_seconds=60, wait_seconds=3, poll_seconds=0.05)
    assert store.run("s", "k", "fp", lambda: created(2)) == (created(2), False)


def test_a_run_that_fails_after_its_lease_ended_leaves_the_new_claim_alone(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN a first run so slow that its lease ended and a retry claimed the key meanwhile
    store = IdempotencyStore(store_redis, ttl_seconds=60, wait_seconds=0.05)
    name = "lucid:local:idem:s:" + hashlib.sha256(b"k").hexdigest()
    retry_claim = '{"state": "running", "fp": "fp", "owner": "the-retry"}'

    def outlived_lease_then_fails() -> StoredResponse:
        redis_client.set(name, retry_claim, ex=10)
        raise ServiceUnavailableError("down")

    # WHEN the first run fails and releases its claim
    with pytest.raises(ServiceUnavailableError):
        store.run("s", "k", "fp", outlived_lease_then_fails)
    # THEN the retry's claim stays: a third request waits for the retry (409), it does not run
    # a duplicate beside it
    assert redis_client.get(name) == retry_claim.encode()
    with pytest.raises(ConflictError):
        store.run("s", "k", "fp", lambda: created(3))


@pytest.mark.parametrize("key", ["", "has space", "k" * 256])
def test_a_malformed_key_is_a_422_that_states_the_rule(
    redis_client: redis.Redis, store_redis: resp.Redis, key: str
) -> None:
    store = IdempotencyStore(store_redis, ttl_seconds=60)
    with pytest.raises(ValidationFailedError) as caught:
        store.run("s", key, "fp", lambda: created(1))
    assert str(caught.value) == "Idempotency-Key must be 1-255 visible ASCII characters"
    assert redis_client.keys("*") == []
