"""The real handlers answer API Gateway's events on a named stage (`rawPath` = `/dev/...`), on the
`$default` stage and as `sam local` sends them (stage named, no prefix), and give clients paths
that carry the stage back (problem `instance`, `Location`).

Events: tests/events/http_api_v2_stage*.json, shaped as AWS sends them on stage `dev`
(notes/aws-facts.md section 1).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pymongo.database import Database

from lucid.web.stage import stage_prefix
from tests.utils.datastore import User
from tests.utils.events import Reply, load_event, reply_from
from tests.utils.functions import load_handler


def _on_stage(
    path: str, route_key: str, *, stage: str = "dev", prefixed: bool = True
) -> dict[str, Any]:
    """AWS's sample event for `path` on `stage` (the path prefixed as AWS prefixes it)."""
    event = load_event("http_api_v2_stage.json")
    raw_path = f"/{stage}{path}" if prefixed and stage != "$default" else path
    event["rawPath"] = event["requestContext"]["http"]["path"] = raw_path
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["requestContext"]["http"]["method"] = route_key.split(" ")[0].replace("ANY", "GET")
    event["requestContext"]["stage"] = stage
    return event


def _as(user: User, event: dict[str, Any]) -> dict[str, Any]:
    event["requestContext"]["authorizer"] = {
        "lambda": {**user.context, "exp": int(time.time()) + 600}
    }
    return event


def _invoke(group: str, event: dict[str, Any]) -> Reply:
    return reply_from(load_handler(group)(event, None))


def test_the_health_route_answers_aws_sample_event_on_a_named_stage() -> None:
    # GIVEN AWS's event for GET https://{api}.execute-api.../dev/health
    event = load_event("http_api_v2_stage.json")
    assert (event["rawPath"], event["routeKey"]) == ("/dev/health", "GET /health")
    # WHEN the meta function handles it THEN the route answers, as at the root
    reply = _invoke("meta", event)
    assert (reply.status, reply.body) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("stage", "prefixed"),
    [("dev", True), ("$default", False), ("dev", False)],
    ids=["named stage", "$default stage", "sam local (stage named, path not prefixed)"],
)
def test_a_protected_route_answers_with_the_authorizer_context(
    alice: User, stage: str, prefixed: bool
) -> None:
    # GIVEN AWS's event for GET /users/me with the authorizer's context for Alice
    event = _as(alice, load_event("http_api_v2_stage_authorizer_context.json"))
    path = "/dev/users/me" if prefixed else "/users/me"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["stage"] = stage
    # WHEN the users function handles it THEN it is her profile, whatever the stage's shape
    reply = _invoke("users", event)
    assert reply.status == 200, reply.body
    assert reply.body["id"] == alice.id


def test_a_problem_names_the_path_the_client_asked_for() -> None:
    # GIVEN a path no route of the meta function serves, on stage dev
    reply = _invoke("meta", _on_stage("/meta/nothing", "GET /meta/{x}"))
    # THEN the 404 problem's instance is the URL path the client used, stage included
    assert reply.status == 404
    assert reply.body["instance"] == "/dev/meta/nothing"


def test_a_created_session_location_carries_the_stage(
    alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a POST /dev/sessions from Alice
    event = _as(alice, _on_stage("/sessions", "POST /sessions"))
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"]["content-type"] = "application/json"
    event["body"] = json.dumps({"name": "staged"})
    # WHEN the sessions function creates it
    reply = _invoke("sessions", event)
    assert reply.status == 201, reply.body
    # THEN its Location resolves against the API's host to the session on the same stage
    assert reply.headers["location"] == f"/dev/sessions/{reply.body['id']}"
    follow = _as(alice, _on_stage(f"/sessions/{reply.body['id']}", "GET /sessions/{id}"))
    assert _invoke("sessions", follow).body["name"] == "staged"


@pytest.mark.parametrize(
    ("path", "stage", "route_key", "prefix"),
    [
        ("/dev/health", "dev", "GET /health", "/dev"),
        ("/dev", "dev", "$default", "/dev"),
        ("/health", "dev", "GET /health", ""),  # sam local, or a custom domain's mapping
        ("/health", "$default", "GET /health", ""),
        ("/development/x", "dev", "$default", ""),  # only a whole segment is the stage
        # a custom domain serving stage "users" without a prefix: the route keeps its path
        ("/users/me", "users", "GET /users/me", ""),
        ("/users/users/7", "users", "GET /users/{id}", "/users"),
        ("/v1/chain/a/b", "v1", "GET /chain/{proxy+}", "/v1"),
    ],
)
def test_the_stage_prefix_is_taken_only_where_api_gateway_put_it(
    path: str, stage: str, route_key: str, prefix: str
) -> None:
    event = {"requestContext": {"stage": stage, "routeKey": route_key}}
    assert stage_prefix(event, path) == prefix


def test_no_event_or_no_stage_means_no_prefix() -> None:
    assert stage_prefix(None, "/dev/health") == ""
    assert stage_prefix({"requestContext": {}}, "/dev/health") == ""
