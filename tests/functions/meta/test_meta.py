"""The meta function through its real Mangum handler, invoked with payload 2.0 events."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest.mock import ANY

import pytest
import redis

from lucid import __version__
from lucid.config import Settings
from lucid.proxy import BreakerState, RedisBreakerStore
from lucid.store import resp
from lucid.store.mongo import build_database
from lucid.web.readiness import readiness_database
from lucid_edge.local import EmbeddedRedis, start_mongo_server
from tests.utils.events import http_event
from tests.utils.functions import load_handler, load_module, run_fresh_instance
from tests.utils.layer_redis import WRONG_PASSWORD, layer_redis, refused_uri
from tests.utils.logs import logged_lines


def invoke(path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    result = load_handler("meta")(http_event("GET", path, **kwargs), None)
    headers = {k.lower(): v for k, v in result["headers"].items()}
    return result["statusCode"], headers, json.loads(result["body"])


def health_with_redis(client: resp.Redis) -> tuple[int, dict[str, str], Any]:
    """GET /meta/health with `client` as the function's Redis client (closed after)."""
    from lucid.web.readiness import readiness_redis

    app = load_module("meta").app
    app.dependency_overrides[readiness_redis] = lambda: client
    try:
        return invoke("/meta/health")
    finally:
        app.dependency_overrides.clear()
        client.close()


def test_health_answers_without_touching_dependencies() -> None:
    status, headers, body = invoke("/health")
    assert status == 200
    assert body == {"status": "ok"}
    assert headers["content-type"] == "application/json"


def test_info_names_service_version_and_stage_and_nothing_of_how_it_is_built() -> None:
    status, headers, body = invoke("/meta/info")
    assert status == 200
    assert body == {"service": "lucid-api-gateway", "version": __version__, "stage": "local"}
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


def test_meta_health_reports_both_dependencies_with_latency() -> None:
    status, _, body = invoke("/meta/health")
    assert status == 200
    assert body["status"] == "ok"
    for name in ("redis", "mongodb"):
        assert body["dependencies"][name]["status"] == "ok"
        assert body["dependencies"][name]["latency_ms"] >= 0


def test_meta_health_names_redis_when_it_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a Redis client pointed at a port where nothing listens
    from lucid_edge.local import free_port
    from tests.utils.layer_redis import unreachable_redis

    # WHEN the readiness route runs
    status, headers, body = health_with_redis(unreachable_redis(free_port()))
    # THEN it is a 503 problem naming redis, and mongodb is still reported healthy
    assert status == 503
    assert headers["content-type"] == "application/problem+json"
    assert body["failing"] == ["redis"]
    assert "redis" in body["detail"]
    assert body["dependencies"]["redis"]["status"] == "down"
    assert body["dependencies"]["mongodb"]["status"] == "ok"
    assert body["instance"] == "/meta/health"
    # AND the breakers, whose shared state lives in Redis, are unknown rather than guessed
    assert body["breakers"] == dict.fromkeys(("blockchain", "session", "node"), "unknown")


def test_meta_health_names_a_mongodb_that_refuses_the_functions_user() -> None:
    # GIVEN a MONGODB_URI whose password the server refuses: the in-memory MongoDB answers
    # pymongo's sign-in as a real mongod answers a user it does not have (18)
    app = load_module("meta").app
    with start_mongo_server() as server:
        uri = server.uri.replace("mongodb://", "mongodb://lucid:Pw-s3cret-9@")
        refusing = build_database(Settings(MONGODB_URI=uri, MONGODB_TIMEOUT_MS=2000))
        app.dependency_overrides[readiness_database] = lambda: refusing
        try:
            # WHEN the readiness route runs, twice
            with logged_lines() as lines:
                invoke("/meta/health")
                status, _, body = invoke("/meta/health")
        finally:
            app.dependency_overrides.clear()
            refusing.client.close()
    # THEN it is the 503 naming mongodb, which refused the user, with MongoDB's code
    assert status == 503
    assert body["detail"] == "dependency down: mongodb (refused the credentials)"
    assert body["failing"] == ["mongodb"]
    mongodb = body["dependencies"]["mongodb"]
    assert (
        mongodb.items()
        >= {
            "status": "down",
            "error": "OperationFailure",
            "code": 18,
            "code_name": "AuthenticationFailed",
        }.items()
    )
    assert body["dependencies"]["redis"] == {"status": "ok", "latency_ms": ANY}
    # AND the function logs the functions' ERROR line for it once (its client's), saying what
    # to check, never the password
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert [(line["message"], line["code"]) for line in errors] == [
        (
            "MongoDB refused the credentials (Authentication failed.: code 18 "
            "AuthenticationFailed), first at /meta/health's ping: check the user name and "
            "password in MONGODB_URI (percent-escaped) and the database the user was created in "
            "(authSource, else the URI's database)",
            18,
        )
    ]
    assert "Pw-s3cret-9" not in repr(lines) + repr(body)


def test_meta_health_says_redis_refused_the_credentials(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN a REDIS_URI whose password Redis refuses WHEN the readiness route runs
    with refused_uri(redis_client, redis_server.uri) as uri:
        status, _, body = health_with_redis(layer_redis(uri))
    # THEN the 503 says Redis refused the credentials, and which refusal, not just "down"
    assert status == 503
    assert body["detail"] == "dependency down: redis (refused the credentials)"
    assert body["dependencies"]["redis"] == {
        "status": "down",
        "error": "AuthenticationError",
        "code_name": "WRONGPASS",
        "latency_ms": ANY,
    }
    assert WRONG_PASSWORD not in json.dumps(body)


def test_meta_health_reports_each_backends_breaker_as_the_proxy_shares_it(
    store_redis: resp.Redis,
) -> None:
    # GIVEN the session backend's breaker tripped by a proxy instance, the node's half-open
    store = RedisBreakerStore(store_redis)
    store.trip("session", 30_000, force=True)
    store.trip("node", 1, force=True)
    time.sleep(0.01)
    # WHEN readiness is asked
    try:
        status, _, body = invoke("/meta/health")
        session_after = store.read("session").state
    finally:  # the session's Redis serves later tests' edges
        store.close("session")
        store.close("node")
    # THEN each backend's breaker is reported, and an open one does not fail readiness
    assert status == 200
    assert body["breakers"] == {"blockchain": "closed", "session": "open", "node": "half_open"}
    # AND it only reads: a successful probe, not this check, closes the breaker
    assert session_after is BreakerState.OPEN


def test_unknown_path_inside_the_function_is_a_problem_404() -> None:
    status, headers, body = invoke("/meta/nothing")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == 404


def test_request_id_is_echoed_when_well_formed_and_replaced_when_not() -> None:
    _, headers, _ = invoke("/health", headers={"X-Request-ID": "abc-123"})
    assert headers["x-request-id"] == "abc-123"
    _, headers, _ = invoke("/health", headers={"X-Request-ID": "bad id\u00e9" * 40})
    assert headers["x-request-id"] != "bad id"
    assert len(headers["x-request-id"]) <= 128


# A fresh instance of the meta function with one store URI its driver refuses: its own process,
# so the process-wide clients of the other tests are not touched.
FRESH_INSTANCE = """
import json, sys
from tests.utils.events import http_event
from tests.utils.layer_redis import WRONG_PASSWORD, layer_redis, refused_uri
from tests.utils.functions import load_handler
from tests.utils.layer_redis import unreachable_redis
result = load_handler("meta")(http_event("GET", "/meta/health"), None)
print(json.dumps(result))
"""


@pytest.mark.parametrize(
    ("setting", "uri", "name", "error"),
    [
        # An unescaped "@" in the password: pymongo refuses the URI when the client is built.
        ("MONGODB_URI", "mongodb://lucid:hunter2@x@127.0.0.1:1/lucid", "mongodb", "InvalidURI"),
        ("REDIS_URI", "http://lucid:hunter2x@127.0.0.1:1/0", "redis", "ValueError"),
    ],
)
def test_meta_health_reports_a_store_whose_uri_its_driver_refuses(
    setting: str, uri: str, name: str, error: str
) -> None:
    # GIVEN a fresh meta function whose store URI its driver cannot use
    # WHEN readiness is asked
    done = run_fresh_instance(FRESH_INSTANCE, {setting: uri})
    result = json.loads(done.stdout.splitlines()[-1])
    body = json.loads(result["body"])
    # THEN it is the 503 naming that store with the error's class, not a 500
    assert result["statusCode"] == 503
    assert body["failing"] == [name]
    assert body["dependencies"][name] == {"status": "down", "latency_ms": 0.0, "error": error}
    other = "redis" if name == "mongodb" else "mongodb"
    assert body["dependencies"][other]["status"] == "ok"
    # AND nothing of the URI's credentials is in the answer or the function's log
    assert "hunter2" not in result["body"]
    assert "hunter2" not in done.stdout + done.stderr
