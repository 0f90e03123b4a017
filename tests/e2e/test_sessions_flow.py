"""Sessions end to end: `lucid serve` (two workers, one shared in-memory MongoDB) on the real
template, users signed in with TRON wallets, real HTTP on 127.0.0.1."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pymongo
import pytest

from lucid_edge.local import EmbeddedRedis, free_port
from lucid_edge.local.mongo_server import start_mongo_server
from tests.e2e.conftest import NAMED_STAGE, ON_A_NAMED_STAGE, on_stage
from tests.e2e.flows import (
    Account,
    create_session,
    in_threads,
    problem,
    served_edge,
    sign_in,
    walk,
)
from tests.e2e.subprocess_edge import SubprocessEdge

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def default_edge(redis_server: EmbeddedRedis) -> Iterator[SubprocessEdge]:
    with served_edge(redis_server.uri) as served:
        yield served


@pytest.fixture(scope="module")
def dev_edge(redis_server: EmbeddedRedis) -> Iterator[SubprocessEdge]:
    with served_edge(redis_server.uri, stage=NAMED_STAGE) as served:
        yield served


@pytest.fixture
def edge(request: pytest.FixtureRequest) -> SubprocessEdge:
    served: SubprocessEdge = on_stage(request)
    return served


def _read(client: httpx.Client, account: Account, session_id: str) -> httpx.Response:
    response = client.get(f"/sessions/{session_id}", headers=account.auth)
    assert response.status_code == 200, response.text
    return response


@ON_A_NAMED_STAGE
def test_session_flow_create_get_list_patch_end(
    edge: SubprocessEdge, client: httpx.Client, alice: Account, bob: Account
) -> None:
    # GIVEN Bob owns a session of his own
    create_session(client, bob, "bob's")
    # WHEN Alice creates a session
    body = {"name": "flow", "node_id": "node-1", "metadata": {"region": "eu", "tags": ["a"]}}
    created = client.post("/sessions", json=body, headers=alice.auth)
    # THEN it is 201 with its Location and version ETag, pending and owned by her
    assert created.status_code == 201, created.text
    session = created.json()
    # (on a named stage the Location carries it: /dev/sessions/<id>, followed from the origin)
    assert created.headers["location"] == f"{urlsplit(edge.base_url).path}/sessions/{session['id']}"
    assert created.headers["etag"] == '"1"'
    assert session["owner_id"] == alice.user_id
    assert (session["status"], session["version"], session["started_at"]) == ("pending", 1, None)
    assert session["metadata"] == body["metadata"]
    # AND every worker reads it back from the shared store, on fresh connections
    for _ in range(12):
        fetched = httpx.get(
            edge.url + created.headers["location"],
            headers={**alice.auth, "Connection": "close"},
        )
        assert fetched.status_code == 200
        assert fetched.json() == session
        assert fetched.headers["etag"] == '"1"'
    # AND her list holds only her sessions, newest first
    second = create_session(client, alice, "second")
    listed = client.get("/sessions", headers=alice.auth)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [second, session["id"]]
    assert listed.json()["next_cursor"] is None

    # WHEN she starts and renames it with the current ETag
    path = f"/sessions/{session['id']}"
    patched = client.patch(
        path,
        json={"status": "active", "name": "renamed"},
        headers={**alice.auth, "If-Match": '"1"'},
    )
    # THEN the change is applied and the ETag moves on
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"'
    assert patched.json()["status"] == "active"
    assert patched.json()["name"] == "renamed"
    assert patched.json()["started_at"] is not None
    # AND a write with the stale ETag is refused and writes nothing
    stale = client.patch(path, json={"name": "lost"}, headers={**alice.auth, "If-Match": '"1"'})
    problem(stale, 412, "precondition-failed")
    # AND a move the lifecycle forbids names the allowed ones
    backwards = client.patch(path, json={"status": "pending"}, headers=alice.auth)
    assert problem(backwards, 409, "conflict")["allowed"] == ["ended"]
    assert _read(client, alice, session["id"]).json() == patched.json()

    # WHEN she ends it, twice
    first_end = client.delete(path, headers=alice.auth)
    second_end = client.delete(path, headers=alice.auth)
    # THEN both are 204 without a body and the session is ended, once
    assert (first_end.status_code, first_end.content) == (204, b"")
    assert (second_end.status_code, second_end.content) == (204, b"")
    ended = _read(client, alice, session["id"])
    assert ended.json()["status"] == "ended"
    assert ended.json()["ended_at"] is not None
    assert ended.headers["etag"] == '"3"'
    problem(client.patch(path, json={"name": "again"}, headers=alice.auth), 409, "conflict")


def test_another_user_cannot_read_change_end_or_list_a_session(
    client: httpx.Client, alice: Account, bob: Account
) -> None:
    # GIVEN Alice's active session
    session_id = create_session(client, alice, "private", metadata={"secret": "x"})
    path = f"/sessions/{session_id}"
    client.patch(path, json={"status": "active"}, headers=alice.auth).raise_for_status()
    before = _read(client, alice, session_id)
    unknown = f"/sessions/{uuid.uuid4().hex}"
    # WHEN Bob reads, changes, ends or lists it
    attempts = [
        client.get(path, headers=bob.auth),
        client.patch(path, json={"name": "mine"}, headers={**bob.auth, "If-Match": '"2"'}),
        client.patch(path, json={"status": "ended"}, headers=bob.auth),
        client.delete(path, headers=bob.auth),
        client.get("/sessions", params={"owner_id": alice.user_id}, headers=bob.auth),
    ]
    # THEN each is a 404, worded exactly like a session that does not exist
    missing = problem(client.get(unknown, headers=bob.auth), 404, "not-found")
    for response in attempts:
        problem(response, 404, "not-found")
        assert "secret" not in response.text
    assert problem(attempts[0], 404, "not-found")["detail"] == missing["detail"]
    assert problem(attempts[-1], 404, "not-found")["detail"] == "no such owner"
    # AND Alice's session is exactly as it was
    after = _read(client, alice, session_id)
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"] == '"2"'
    # AND Bob's own list does not show it
    mine = client.get("/sessions", headers=bob.auth).json()["items"]
    assert session_id not in {item["id"] for item in mine}


@pytest.mark.parametrize(
    ("field", "value"),
    [("owner_id", "bob"), ("version", 99), ("id", "f" * 32), ("created_at", "2000-01-01T00:00Z")],
)
def test_patch_refuses_fields_a_client_may_not_set(
    client: httpx.Client, alice: Account, bob: Account, field: str, value: Any
) -> None:
    session_id = create_session(client, alice, "mine")
    before = _read(client, alice, session_id)
    sent = bob.user_id if value == "bob" else value
    # WHEN Alice sends a forbidden field beside an allowed one
    response = client.patch(
        f"/sessions/{session_id}", json={"name": "changed", field: sent}, headers=alice.auth
    )
    # THEN it is a 422 naming the field, and nothing (not even the name) changed
    body = problem(response, 422, "validation")
    assert body["detail"] == f"invalid {field}"
    assert [error["loc"] for error in body["errors"]] == [["body", field]]
    assert set(body["errors"][0]) == {"loc", "msg", "type"}  # the rejected input is not echoed
    assert _read(client, alice, session_id).json() == before.json()
    assert client.get("/sessions", headers=bob.auth).json()["items"] == []


def test_create_refuses_an_owner_or_status_chosen_by_the_client(
    client: httpx.Client, alice: Account, bob: Account
) -> None:
    for field, value in (("owner_id", bob.user_id), ("status", "active"), ("version", 7)):
        response = client.post(
            "/sessions", json={"name": "forged", field: value}, headers=alice.auth
        )
        assert problem(response, 422, "validation")["detail"] == f"invalid {field}"
    for account in (alice, bob):
        assert client.get("/sessions", headers=account.auth).json()["items"] == []


def test_pagination_walks_250_sessions_once_while_new_ones_arrive(
    edge: SubprocessEdge, client: httpx.Client, alice: Account
) -> None:
    # GIVEN 250 sessions, created over five connections at once (so created_at ties occur)
    def create_batch(worker: int) -> list[str]:
        with edge.client() as own:
            return [create_session(own, alice, f"s{worker}-{i}") for i in range(250 // 5)]

    originals = set(itertools.chain.from_iterable(in_threads(5, create_batch)))
    assert len(originals) == 250
    arrivals: list[str] = []

    def insert_three() -> None:
        arrivals.extend(create_session(client, alice, "late") for _ in range(3))

    # WHEN Alice walks newest-first in pages of 40 while three sessions arrive after each page
    newest_first = walk(client, "/sessions", alice, {"limit": 40}, insert_three)
    # THEN she sees exactly the sessions that existed when she started: none twice, none missed
    ids = [item["id"] for item in newest_first]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == originals
    assert len(arrivals) == 18
    order = [(item["created_at"], item["id"]) for item in newest_first]
    assert order == sorted(order, reverse=True)

    # WHEN she walks oldest-first while more arrive
    before_walk = originals | set(arrivals)
    oldest_first = walk(
        client, "/sessions", alice, {"limit": 40, "sort": "created_at"}, insert_three
    )
    ids = [item["id"] for item in oldest_first]
    # THEN every session appears once, and the ones that arrived meanwhile come at the end
    assert len(ids) == len(set(ids))
    assert set(ids) == before_walk | set(arrivals)
    assert ids[-3:] == arrivals[-3:]
    order = [(item["created_at"], item["id"]) for item in oldest_first]
    assert order == sorted(order)
    # AND a cursor taken for one query is refused for another
    page = client.get("/sessions", params={"limit": 1}, headers=alice.auth).json()
    reused = client.get(
        "/sessions",
        params={"limit": 1, "status": "ended", "cursor": page["next_cursor"]},
        headers=alice.auth,
    )
    problem(reused, 422, "validation")


def test_concurrent_patches_with_one_etag_let_exactly_one_win(
    edge: SubprocessEdge, alice: Account, client: httpx.Client
) -> None:
    session_id = create_session(client, alice, "contended")

    def rename(index: int) -> httpx.Response:
        # Its own connection each, so the writes spread over both workers.
        with edge.client() as own:
            return own.patch(
                f"/sessions/{session_id}",
                json={"name": f"writer {index}"},
                headers={**alice.auth, "If-Match": '"1"'},
            )

    # WHEN eight clients patch with the same ETag at the same moment
    responses = in_threads(8, rename)
    # THEN exactly one wins and the other seven are told their ETag is stale
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * 7
    for response in responses:
        if response.status_code == 412:
            problem(response, 412, "precondition-failed")
    winner = next(response for response in responses if response.status_code == 200)
    # AND the stored session is the winner's write, applied once
    stored = _read(client, alice, session_id)
    assert stored.headers["etag"] == '"2"'
    assert stored.json()["name"] == winner.json()["name"]


@ON_A_NAMED_STAGE
def test_a_retried_post_with_one_idempotency_key_creates_one_session(
    edge: SubprocessEdge, client: httpx.Client, alice: Account
) -> None:
    body = {"name": "once", "metadata": {"attempt": 1}}
    headers = {**alice.auth, "Idempotency-Key": "create-once-1"}
    # WHEN the same POST is sent five times, on fresh connections
    responses = [
        httpx.post(
            f"{edge.base_url}/sessions", json=body, headers={**headers, "Connection": "close"}
        )
        for _ in range(5)
    ]
    # THEN each answers the first result; only the first is not a replay
    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["id"] for response in responses}) == 1
    assert len({response.headers["location"] for response in responses}) == 1
    replayed = [response.headers.get("idempotent-replayed") for response in responses]
    assert replayed == [None] + ["true"] * 4

    # WHEN five retries of another key arrive at the same moment
    def post(_: int) -> httpx.Response:
        with edge.client() as own:
            return own.post(
                "/sessions", json={"name": "race"}, headers={**alice.auth, "Idempotency-Key": "k2"}
            )

    racing = in_threads(5, post)
    assert {response.status_code for response in racing} == {201}
    assert len({response.json()["id"] for response in racing}) == 1
    # THEN the list shows one session per key
    listed = client.get("/sessions", headers=alice.auth).json()["items"]
    assert sorted(item["name"] for item in listed) == ["once", "race"]
    # AND the same key with another body is refused and creates nothing
    changed = client.post("/sessions", json={**body, "name": "twice"}, headers=headers)
    assert "Idempotency-Key" in problem(changed, 422, "validation")["detail"]
    assert len(client.get("/sessions", headers=alice.auth).json()["items"]) == 2


@pytest.mark.parametrize(
    "session_id",
    ["nope", "A" * 32, "0" * 31, "0" * 33, "%7B%22%24ne%22%3Anull%7D", "..%2F..%2Fusers"],
)
def test_malformed_session_ids_are_404(
    client: httpx.Client, alice: Account, session_id: str
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        body = {"name": "x"} if method == "PATCH" else None
        response = client.request(method, f"/sessions/{session_id}", json=body, headers=alice.auth)
        assert response.status_code == 404, (method, response.text)
        if response.headers["content-type"] == "application/problem+json":
            assert response.json()["detail"] == "no such session"
        else:  # the edge itself found no route for that path, as API Gateway would
            assert response.json() == {"message": "Not Found"}


def test_operators_in_the_query_string_are_refused_or_inert(
    client: httpx.Client, alice: Account, bob: Account
) -> None:
    mine = create_session(client, alice, "alice's")
    create_session(client, bob, "bob's")
    # Bracketed names are not our parameters: ignored, so the list stays Alice's own.
    for query in ("status[$ne]=x", "owner_id[$ne]=null", "owner_id[$exists]=true"):
        response = client.get(f"/sessions?{query}", headers=alice.auth)
        assert response.status_code == 200, query
        assert [item["id"] for item in response.json()["items"]] == [mine]
    # Operator documents where a typed value belongs: 422 naming the parameter.
    refused = [
        ("owner_id", '{"$ne":null}'),
        ("status", '{"$ne":"ended"}'),
        ("limit", "0"),
        ("limit", "101"),
        ("sort", "name"),
        ("cursor", "not-a-cursor"),
    ]
    for name, value in refused:
        response = client.get("/sessions", params={name: value}, headers=alice.auth)
        body = problem(response, 422, "validation")
        assert [error["loc"] for error in body["errors"]] == [["query", name]], value
    # Metadata keys that MongoDB would read as operators never reach it.
    forged = client.post(
        "/sessions", json={"name": "x", "metadata": {"$where": "1"}}, headers=alice.auth
    )
    assert problem(forged, 422, "validation")["detail"] == "invalid metadata"


def test_mongodb_down_is_503_and_a_retry_once_it_returns_creates_exactly_one(
    redis_server: EmbeddedRedis,
) -> None:
    port = free_port()
    mongo = start_mongo_server(port=port)
    outage_env = {"MONGODB_URI": mongo.uri, "MONGODB_TIMEOUT_MS": "500"}
    try:
        with (
            served_edge(redis_server.uri, outage_env) as edge,
            edge.client() as client,
        ):
            alice = sign_in(client)
            before = create_session(client, alice, "before the outage")
            body = {"name": "during the outage"}
            headers = {**alice.auth, "Idempotency-Key": "outage-1"}
            # GIVEN MongoDB goes away
            mongo.stop()
            # WHEN Alice creates, lists and reads sessions
            attempts = [
                ("POST", "/sessions", body),
                ("GET", "/sessions", None),
                ("GET", f"/sessions/{before}", None),
                ("POST", "/sessions", body),
            ]
            for method, path, payload in attempts:
                response = client.request(method, path, json=payload, headers=headers)
                # THEN each is the function's 503 problem naming the store, never a 500 or a
                # hang: a call held until the function's Timeout (29 s) would be API Gateway's
                # 500 {"message": ...}, not this problem (no timing assert on a shared machine)
                assert "unavailable" in problem(response, 503, "service-unavailable")["detail"]
            health = client.get("/meta/health")
            assert problem(health, 503, "service-unavailable")["failing"] == ["mongodb"]
            assert client.get("/health").status_code == 200  # the edge itself keeps serving

            # WHEN MongoDB is back on the same port (a fresh in-memory store, into which Alice's
            # account is restored: a session is only ever created for an existing account)
            mongo = start_mongo_server(port=port)
            with pymongo.MongoClient[dict[str, Any]](mongo.uri) as restore:
                restore["lucid"]["users"].insert_one({"_id": alice.user_id, "role": "user"})
            # AND Alice retries with the same key until the edge has found it again
            for _ in range(50):
                retried = client.post("/sessions", json=body, headers=headers)
                if retried.status_code != 503:
                    break
                time.sleep(0.1)
            # THEN the retry creates the session (the failed POSTs left no claim and no replay
            # behind), and a further retry replays it
            assert retried.status_code == 201, retried.text
            assert retried.headers.get("idempotent-replayed") is None
            again = client.post("/sessions", json=body, headers=headers)
            assert again.headers["idempotent-replayed"] == "true"
            assert again.json()["id"] == retried.json()["id"]
            listed = client.get("/sessions", headers=alice.auth).json()["items"]
            assert [item["id"] for item in listed] == [retried.json()["id"]]
            assert client.get("/meta/health").status_code == 200
    finally:
        mongo.stop()


@ON_A_NAMED_STAGE
def test_the_edge_names_the_templates_deploy_only_parts_once_at_start_up(
    edge: SubprocessEdge,
) -> None:
    # GIVEN `lucid serve` on the real template (roles, log groups: deploy-only)
    lines = [line for line in edge.output().splitlines() if line.startswith("deploy-only")]
    # THEN the parent printed them once, whatever the number of workers
    assert len(lines) == 1, edge.output()[-3000:]
    assert "Resources.SessionsFunctionRole (AWS::IAM::Role)" in lines[0]
    assert "Resources.SessionsFunctionLogGroup (AWS::Logs::LogGroup)" in lines[0]
    # AND the URL it printed is the API's base (the stage's path included when it is named)
    assert f"Lucid edge on {edge.base_url} (stage {edge.stage}," in edge.output()
    # AND on a named stage the root answers as AWS's does, 404 without invoking anything
    root = httpx.get(edge.url + "/health")
    assert root.status_code == (200 if edge.stage == "$default" else 404)
