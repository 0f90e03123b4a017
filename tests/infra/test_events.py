"""events/ holds one API Gateway event per function (`make invoke FUNCTION=UsersFunction` reads
events/users.json): each names a route of its function in the template and is answered by that
route through the real handler, not by "no such route"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.store.documents import utcnow
from lucid_edge.template import load_template
from tests.utils.datastore import atomic_writes, database_for
from tests.utils.events import Reply, reply_from
from tests.utils.functions import load_handler

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TEMPLATE = load_template(ROOT / "infra" / "template.yaml")


def _function_of(name: str) -> str:
    return name.removesuffix("Function").lower()


def _event(group: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{group}.json").read_text())
    return event


@pytest.fixture
def database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes(), database_for("users", "sessions") as db:
        yield db


def test_there_is_one_event_per_function_and_nothing_else() -> None:
    assert {p.stem for p in EVENTS.glob("*.json")} == {_function_of(f) for f in TEMPLATE.functions}


@pytest.mark.parametrize("group", sorted(_function_of(f) for f in TEMPLATE.functions))
def test_each_event_names_a_route_of_its_function(group: str) -> None:
    event = _event(group)
    (function,) = [f for f in TEMPLATE.functions if _function_of(f) == group]
    if event.get("type") == "REQUEST":  # an authorizer's event: it guards the route it names
        assert TEMPLATE.api.authorizers["LucidAuthorizer"].function == function
        route = next(r for r in TEMPLATE.api.routes if r.route_key == event["routeKey"])
        assert route.authorizer == "LucidAuthorizer"
        return
    routes = {r.route_key for r in TEMPLATE.api.routes if r.function == function}
    assert event["routeKey"] in routes
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    assert event["rawPath"] == event["requestContext"]["http"]["path"]


def _answer(group: str) -> Reply:
    return reply_from(load_handler(group)(_event(group), None))


@pytest.mark.usefixtures("redis_client")
def test_the_public_events_are_answered_by_their_routes() -> None:
    assert _answer("meta").status == 200
    challenge = _answer("auth")
    assert challenge.status == 200
    assert "wants you to sign in with your TRON account" in challenge.body["message"]
    # no backend is configured in the tests: the proxy route itself answers, naming the setting
    proxy = _answer("proxy")
    assert proxy.status == 503
    assert "BLOCKCHAIN_SERVICE_URL" in proxy.body["detail"]


def test_the_protected_events_carry_a_caller_the_routes_accept(
    database: Database[dict[str, Any]],
) -> None:
    # GIVEN the user the events' authorizer context names
    caller = _event("users")["requestContext"]["authorizer"]["lambda"]
    now = utcnow()
    database["users"].insert_one(
        {"_id": caller["user_id"], "address": caller["address"], "role": "user",
         "display_name": None, "email": None, "preferences": {},
         "created_at": now, "updated_at": now}
    )  # fmt: skip
    # THEN the users and sessions events are answered as that user
    me = _answer("users")
    assert (me.status, me.body["id"]) == (200, caller["user_id"])
    sessions = _answer("sessions")
    assert (sessions.status, sessions.body["items"]) == (200, [])


@pytest.mark.usefixtures("redis_client")
def test_the_authorizer_event_is_decided() -> None:
    # its token is a placeholder: the real authorizer denies it (API Gateway would answer 403)
    assert load_handler("authorizer")(_event("authorizer"), None) == {"isAuthorized": False}
