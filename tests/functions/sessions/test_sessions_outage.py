"""MongoDB down: the sessions function answers 503 problem+json and leaves nothing half-written.

"Down" is a real pymongo client pointed at a closed port on 127.0.0.1 (200 ms server selection
timeout); "back" is the in-memory mongomock database the other tests use.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.config import Settings
from lucid.store import resp
from lucid.store.keys import idempotency_prefix
from lucid.store.mongo import build_database
from lucid.store.redis_client import build_redis
from lucid.web.stores import stores_of_app, use_stores
from lucid_edge.local import free_port, start_mongo_server
from tests.utils.datastore import User, call, database_for, fail_on
from tests.utils.functions import load_module
from tests.utils.logs import logged_lines
from tests.utils.tied import start_redis

api = partial(call, "sessions")


def test_mongodb_down_is_503_problem_and_a_retry_after_it_returns_creates_one_session(
    alice: User, database: Database[dict[str, Any]], dead_database: Database[dict[str, Any]]
) -> None:
    body = {"name": "during outage"}
    headers = {"Idempotency-Key": "outage-1"}
    # GIVEN MongoDB is unreachable
    with database_for("sessions", database=dead_database):
        # WHEN a session is created, read and listed
        created = api("POST", "/sessions", caller=alice, body=body, headers=headers)
        listed = api("GET", "/sessions", caller=alice)
    # THEN each is a 503 problem that names the store, not a 500 or a hang
    for reply in (created, listed):
        assert reply.status == 503
        assert reply.headers["content-type"] == "application/problem+json"
        assert "unavailable" in reply.body["detail"]
    # AND once MongoDB is back, nothing was half-written and the retry succeeds exactly once
    assert database["sessions"].count_documents({}) == 0
    retried = api("POST", "/sessions", caller=alice, body=body, headers=headers)
    assert retried.status == 201
    assert retried.headers.get("idempotent-replayed") is None
    assert database["sessions"].count_documents({}) == 1


def _refused_calls(uri: str, alice: User, clients: int = 1) -> tuple[list[Any], list[Any]]:
    """List and create sessions through `clients` pymongo clients of `uri`, one after the
    other; each reply, and the log lines of all of them."""
    replies = []
    with logged_lines() as lines:
        for _ in range(clients):
            refusing = build_database(Settings(MONGODB_URI=uri, MONGODB_TIMEOUT_MS=2000))
            try:
                with database_for("sessions", database=refusing):
                    replies.append(api("GET", "/sessions", caller=alice))
                    replies.append(api("POST", "/sessions", caller=alice, body={"name": "x"}))
            finally:
                refusing.client.close()
    return replies, lines


def _same_problem_as(unreachable: Any, reply: Any) -> None:
    assert reply.status == 503
    assert {k: reply.body[k] for k in ("type", "title", "status")} == {
        k: unreachable.body[k] for k in ("type", "title", "status")
    }
    assert reply.headers.keys() - {"x-request-id", "content-length"} == (
        unreachable.headers.keys() - {"x-request-id", "content-length"}
    )


def test_a_mongodb_that_refuses_the_password_is_503_saying_it_refused_the_credentials(
    alice: User, database: Database[dict[str, Any]], dead_database: Database[dict[str, Any]]
) -> None:
    """The refusal is a real wire-protocol answer: pymongo signs in over the wire (SCRAM) at the
    first operation, and the in-memory MongoDB answers as a real mongod answers a user it does
    not have (18 AuthenticationFailed, `lucid_edge.local.mongo_commands` sasl_start)."""
    # GIVEN a MONGODB_URI whose password the server refuses, in two clients one after the other
    with start_mongo_server() as server:
        uri = server.uri.replace("mongodb://", "mongodb://lucid:Pw-s3cret-9@")
        # WHEN sessions are listed and created through each
        replies, lines = _refused_calls(uri, alice, clients=2)
    with database_for("sessions", database=dead_database):
        unreachable = api("GET", "/sessions", caller=alice)
    # THEN each is the 503 problem an unreachable MongoDB answers, not a 500, but saying that
    # the store refused the credentials instead of that it is unavailable
    assert unreachable.body["detail"] == "the tokens store is unavailable"
    for reply in replies:
        _same_problem_as(unreachable, reply)
    assert [reply.body["detail"] for reply in replies] == 4 * [
        "the tokens store refused the credentials"
    ]
    # AND each client logs one ERROR line (not one per request) saying what to check, with no
    # traceback and never the password
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert [line["message"] for line in errors] == 2 * [
        "MongoDB refused the credentials (Authentication failed.: code 18 "
        "AuthenticationFailed), first at the tokens store's request: check the user name and "
        "password in MONGODB_URI (percent-escaped) and the database the user was created in "
        "(authSource, else the URI's database)"
    ]
    assert all(line["code"] == 18 and "exception" not in line for line in errors)
    assert "Pw-s3cret-9" not in repr(lines) + repr([reply.body for reply in replies])


def test_a_mongodb_that_requires_a_user_the_uri_does_not_name_is_503_refusing_the_operation(
    alice: User, database: Database[dict[str, Any]], dead_database: Database[dict[str, Any]]
) -> None:
    """The refusal is a real wire-protocol answer: the in-memory MongoDB started with
    `requires_auth` answers every command but the handshake's as a mongod with authorization
    on answers a client that has not signed in (13 Unauthorized "Command find requires
    authentication"), and pymongo raises its own OperationFailure for it."""
    # GIVEN a server that requires sign-in and a MONGODB_URI that names no user
    with start_mongo_server(requires_auth=True) as server:
        # WHEN sessions are listed and created
        replies, lines = _refused_calls(server.uri, alice)
    with database_for("sessions", database=dead_database):
        unreachable = api("GET", "/sessions", caller=alice)
    # THEN each is the store's 503, saying that the store refused the operation
    for reply in replies:
        _same_problem_as(unreachable, reply)
    assert [reply.body["detail"] for reply in replies] == 2 * [
        "the tokens store refused the operation"
    ]
    # AND one ERROR line names the refused command and what to check in MONGODB_URI
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert [(line["message"], line["code"]) for line in errors] == [
        (
            "MongoDB refused the operation (Command find requires authentication: code 13 "
            "Unauthorized), first at the tokens store's request: check that MONGODB_URI names "
            "a user, and that the user's roles allow the command (readWrite on the gateway's "
            "database)",
            13,
        )
    ]


def _same(client: resp.Redis) -> resp.Redis:
    return client


def test_a_redis_that_refuses_the_password_degrades_as_an_unreachable_one(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN the real redis-server started with requirepass, reached with a wrong password
    # (redis-py 8.1: WRONGPASS is AuthenticationError, a ConnectionError), and one that is down
    app = load_module("sessions").app
    answers: dict[str, list[tuple[int, Any]]] = {}
    with start_redis(config=["--requirepass", "right-pw"]) as server:
        for name, uri in (
            ("refused", f"redis://:Wrong-pw-7@127.0.0.1:{server.port}/0"),
            ("down", f"redis://127.0.0.1:{free_port()}/0"),
        ):
            client = build_redis(Settings(REDIS_URI=uri))
            before = use_stores(app, stores_of_app(app)._replace(redis=partial(_same, client)))
            try:
                with logged_lines() as lines:
                    # WHEN sessions are listed, and one is created with an Idempotency-Key
                    listed = api("GET", "/sessions", caller=alice)
                    key = {"Idempotency-Key": f"redis-{name}"}
                    body = {"name": "keyed"}
                    created = api("POST", "/sessions", caller=alice, body=body, headers=key)
            finally:
                use_stores(app, before)
                client.close()
            answers[name] = [(r.status, r.body.get("detail")) for r in (listed, created)]
            assert "Wrong-pw-7" not in repr(lines)
    # THEN both degrade alike: the list from MongoDB (the revocation check falls back to it),
    # the keyed create 503 (its replay record cannot be kept), and nothing is written
    # AND the 503 says which happened: Redis refused the credentials, or is unavailable
    assert answers == {
        "refused": [(200, None), (503, "the idempotency store refused the credentials")],
        "down": [(200, None), (503, "the idempotency store is unavailable")],
    }
    assert database["sessions"].count_documents({}) == 0


def test_mongodb_failing_between_the_insert_and_the_owner_check_leaves_no_session(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN MongoDB takes the session's insert, then fails the owner check that follows
    # (a primary stepping down mid-request: pymongo raises AutoReconnect)
    fail_on(monkeypatch, "users", "find_one")
    # WHEN the session is created
    reply = api("POST", "/sessions", caller=alice, body={"name": "half"})
    # THEN the client is told 503 and no session it was told failed is left behind
    assert reply.status == 503
    assert reply.headers["content-type"] == "application/problem+json"
    monkeypatch.undo()
    assert database["sessions"].count_documents({}) == 0


def test_a_lost_insert_reply_and_its_retry_with_the_same_key_create_one_session(
    alice: User, database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"name": "once", "metadata": {"region": "eu"}}
    headers = {"Idempotency-Key": "lost-reply-1"}
    # GIVEN MongoDB applies the session's insert, but its reply is lost (AutoReconnect)
    fail_on(monkeypatch, "sessions", "insert_one", applied=True)
    # WHEN the session is created: the client is told 503
    failed = api("POST", "/sessions", caller=alice, body=body, headers=headers)
    assert failed.status == 503
    assert database["sessions"].count_documents({}) == 1
    # AND it retries with the same key once MongoDB answers again
    monkeypatch.undo()
    retried = api("POST", "/sessions", caller=alice, body=body, headers=headers)
    # THEN the retry answers with the session the first attempt created, and there is one
    assert retried.status == 201
    stored = database["sessions"].find_one({})
    assert stored is not None
    assert retried.body["id"] == stored["_id"]
    assert retried.headers["location"] == f"/sessions/{stored['_id']}"
    assert database["sessions"].count_documents({}) == 1
    # AND the same key with another body is refused like any reused key, creating nothing
    other = api("POST", "/sessions", caller=alice, body={"name": "other"}, headers=headers)
    assert other.status == 422
    assert database["sessions"].count_documents({}) == 1


def test_a_key_reused_after_its_replay_expired_with_another_body_is_422(
    alice: User, database: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    # GIVEN a session created with a key whose stored answer has since left Redis
    headers = {"Idempotency-Key": "expired-1"}
    assert api("POST", "/sessions", caller=alice, body={"name": "a"}, headers=headers).status == 201
    # (the prefix the store writes under: a pattern without the stage matched nothing, so the
    # 422 used to come from the replay record, never from the stored session it is about)
    names = list(redis_client.scan_iter(match=f"{idempotency_prefix()}*"))
    assert names
    redis_client.delete(*names)
    # WHEN the key comes back with another body THEN it is refused, naming the header
    reply = api("POST", "/sessions", caller=alice, body={"name": "b"}, headers=headers)
    assert reply.status == 422
    assert reply.body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert reply.body["detail"] == (
        "this Idempotency-Key was already used with a different request body"
    )
    assert [session["name"] for session in database["sessions"].find({})] == ["a"]


def test_a_failed_owner_check_on_a_key_reused_later_keeps_the_session_the_key_created(
    alice: User,
    database: Database[dict[str, Any]],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = {"name": "kept"}
    headers = {"Idempotency-Key": "reused-after-a-day"}
    # GIVEN a session created with a key (201), whose replay record has since expired
    created = api("POST", "/sessions", caller=alice, body=body, headers=headers)
    assert created.status == 201
    for key in redis_client.scan_iter(match=f"{idempotency_prefix()}*"):
        redis_client.delete(key)
    # WHEN the same request comes again and MongoDB fails the owner check that follows
    fail_on(monkeypatch, "users", "find_one")
    again = api("POST", "/sessions", caller=alice, body=body, headers=headers)
    assert again.status == 503
    monkeypatch.undo()
    # THEN the session the first request created (and the client may have used) is still there
    assert database["sessions"].find_one({"_id": created.body["id"]}) is not None
