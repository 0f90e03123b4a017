"""Redis and MongoDB clients: built from the URIs only; without one, a message saying how."""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from typing import Any

import pymongo
import pytest

from lucid.config import Settings, UriNotSetError
from lucid.errors import ServiceUnavailableError
from lucid.store.health import check_mongodb, check_redis
from lucid.store.mongo import build_database
from lucid.store.redis_client import build_redis
from lucid.store.unusable import StoreUnusableError
from lucid.users.repository import UserRepository
from lucid_edge.local import free_port, start_mongo_server
from tests.utils.logs import logged_lines
from tests.utils.tied import start_redis

KEY = "k" * 32


def test_redis_client_talks_to_the_configured_server(redis_server) -> None:  # type: ignore[no-untyped-def]
    client = build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=redis_server.uri))
    assert client.ping() is True
    client.close()


@pytest.mark.parametrize(
    ("builder", "name"), [(build_redis, "REDIS_URI"), (build_database, "MONGODB_URI")]
)
def test_without_a_uri_the_local_stage_says_to_run_through_the_edge(builder, name) -> None:  # type: ignore[no-untyped-def]
    # GIVEN the local stage and no URI: the layer starts no server of its own
    settings = Settings(JWT_SECRET_KEY=KEY, REDIS_URI=None, MONGODB_URI=None)
    # WHEN a client is built THEN it is the store's 503, whose cause (logged, never answered)
    # names the variable and the two ways to provide it
    with pytest.raises(StoreUnusableError) as raised:
        builder(settings)
    cause = raised.value.cause
    assert isinstance(cause, UriNotSetError)
    assert f"{name} is unset: run the functions through the local edge" in str(cause)
    assert f"or set {name}" in str(cause)


@pytest.mark.parametrize(
    ("builder", "name", "store"),
    [(build_redis, "REDIS_URI", "redis"), (build_database, "MONGODB_URI", "mongodb")],
)
def test_outside_local_missing_uris_refuse_to_start(builder, name, store) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a deployed stage whose store URI worked (its client built), then is not configured
    working = {name: f"{store}://127.0.0.1:{free_port()}"}
    built = builder(Settings(STAGE="dev", JWT_SECRET_KEY=KEY, **working))
    (built.client if isinstance(built, pymongo.database.Database) else built).close()
    settings = Settings(STAGE="dev", JWT_SECRET_KEY=KEY, REDIS_URI=None, MONGODB_URI=None)
    with logged_lines() as lines, pytest.raises(StoreUnusableError) as raised:
        builder(settings)
    assert "required on stage 'dev'" in str(raised.value.cause)
    # THEN the function's ERROR line says how to configure it (our own text, no driver's)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert [
        (line["message"], line["setting"], line["store"], line["error"]) for line in errors
    ] == [
        (
            f"{name} is required on stage 'dev': set {name}_SECRET_ARN or {name}_PARAM (where "
            "it is kept in Secrets Manager / SSM)",
            name,
            store,
            "UriNotSetError",
        )
    ]


def test_redis_down_fails_fast_within_the_timeout() -> None:
    client = build_redis(
        Settings(JWT_SECRET_KEY=KEY, REDIS_URI=f"redis://127.0.0.1:{free_port()}/0")
    )
    status = check_redis(client)
    assert not status.healthy
    assert status.error == "ConnectionError"
    assert status.latency_ms < 1000


def test_mongodb_uri_switches_to_pymongo_without_code_change() -> None:
    database = build_database(
        Settings(
            JWT_SECRET_KEY=KEY,
            MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
            MONGODB_TIMEOUT_MS=100,
            MONGODB_DATABASE="gateway",
        )
    )
    try:
        assert isinstance(database.client, pymongo.MongoClient)
        assert database.name == "gateway"
        status = check_mongodb(database)
        assert not status.healthy
        assert status.error == "ServerSelectionTimeoutError"
    finally:
        database.client.close()


def test_a_pooled_connection_that_died_with_an_earlier_server_is_redialled_unnoticed() -> None:
    # GIVEN a client whose pooled connection served a Redis that has since restarted
    server = start_redis()
    client = build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=server.uri))
    try:
        assert client.set("k", "1") is True
        server.stop()
        with start_redis(port=server.port):
            # WHEN it is used again THEN the call simply works
            assert client.get("k") is None  # a fresh server, a fresh dataset
    finally:
        client.connection_pool.disconnect()


def test_the_database_named_in_mongodb_uri_is_the_one_written() -> None:
    # GIVEN a MongoDB URI that names its database, as Atlas's and every driver's do
    # (mongodb://host/<database>?options: "the database to use", the connection string spec)
    with start_mongo_server() as server:
        uri = server.uri.replace("/?", "/prod_gateway?")
        database = build_database(Settings(JWT_SECRET_KEY=KEY, MONGODB_URI=uri))
        try:
            # WHEN the gateway writes a user
            UserRepository(database).upsert_on_login("TQx", is_admin=False)
            # THEN it lands in that database, not in MONGODB_DATABASE's default ("lucid")
            names = database.client.list_database_names()
            assert database.name == "prod_gateway"
            assert "prod_gateway" in names
            assert "lucid" not in names
        finally:
            database.client.close()


def test_without_a_database_in_the_uri_mongodb_database_names_it() -> None:
    with start_mongo_server() as server:
        database = build_database(Settings(JWT_SECRET_KEY=KEY, MONGODB_URI=server.uri))
        assert database.name == "lucid"
        database.client.close()


@pytest.mark.parametrize("by", ["address", "id"])
def test_a_mongodb_that_stops_answering_is_a_503_within_its_timeout(
    monkeypatch: pytest.MonkeyPatch, by: str
) -> None:
    # GIVEN a client whose server answers, then stops answering with the connection left open
    # (a network partition, a hung primary): every command waits until the test releases it
    released = threading.Event()
    with start_mongo_server() as server:
        backend = server._server.backend
        answer = backend.run

        def hung(command: dict[str, Any], database: str, connection_id: int) -> dict[str, Any]:
            released.wait(30)
            return answer(command, database, connection_id)

        database = build_database(
            Settings(JWT_SECRET_KEY=KEY, MONGODB_URI=server.uri, MONGODB_TIMEOUT_MS=1000)
        )
        users = UserRepository(database)
        user = users.upsert_on_login("T" * 34, is_admin=False)
        # by id: the fast path's attempt, then pymongo's (lucid.store.fast_reads)
        read = (
            partial(users.find_by_address, user["address"])
            if by == "address"
            else partial(users.find_by_id, user["_id"])
        )
        try:
            assert read() == user
            monkeypatch.setattr(backend, "run", hung)
            # WHEN a request reads through it
            started = time.monotonic()
            with pytest.raises(ServiceUnavailableError):
                read()
            waited = time.monotonic() - started
        finally:
            released.set()
            database.client.close()
    # THEN MONGODB_TIMEOUT_MS (1 s) bounds the whole read, its retry included (and by id the
    # fast path's attempt and pymongo's after it together: each with its own would take 2 s):
    # the 503 comes well before a 10 s Lambda Timeout (6d2cc82: a 5 s socket timeout, then a
    # retry)
    assert 0.9 < waited < 1.8


def test_a_refused_uri_is_logged_once_until_it_works_again(redis_server) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a REDIS_URI that works, then one redis-py refuses (a port that is not a number)
    good = Settings(JWT_SECRET_KEY=KEY, REDIS_URI=redis_server.uri)
    bad = Settings(JWT_SECRET_KEY=KEY, REDIS_URI="redis://127.0.0.1:hunter2/0")
    with logged_lines() as lines:
        build_redis(good).close()
        # WHEN clients are built from the bad one twice, from the good one, then the bad again
        refusals = []
        for settings in (bad, bad, good, bad):
            try:
                build_redis(settings).close()
            except StoreUnusableError as error:
                refusals.append(error)
    # THEN each refusal is the 503 naming the store, never the URI
    assert [(error.status, error.extensions) for error in refusals] == [
        (503, {"store": "redis"})
    ] * 3
    assert not any("hunter2" in str(error) for error in refusals)
    # AND the fault is logged when it first appears, and again once it came back after working
    errors = [(line["setting"], line["error"]) for line in lines if line["level"] == "ERROR"]
    assert errors == [("REDIS_URI", "ValueError")] * 2
    assert "hunter2" not in json.dumps(lines)
