"""A role change signs the user out everywhere (OWASP API5): tokens carry the role, so a demoted
admin must not keep admin powers until the token expires, nor a promoted user act on a stale one.

Real auth, authorizer and users handlers over one in-memory MongoDB (mongomock) and real Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from pymongo.database import Database

from tests.utils.auth_flow import authorize, call_auth, sign_in
from tests.utils.datastore import User, atomic_writes, call, database_for, fail_on
from tests.utils.wallets import Wallet


@dataclass
class SignedIn:
    wallet: Wallet
    caller: User
    tokens: dict[str, Any]


@pytest.fixture
def shared_database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes(), database_for("auth", "users", "sessions") as db:
        yield db


def signed_in_as(database: Database[dict[str, Any]], role: str) -> SignedIn:
    """A wallet signed in with `role` (set in the store; a fresh sign-in carries it)."""
    wallet = Wallet()
    sign_in(wallet)
    database["users"].update_one({"address": wallet.address}, {"$set": {"role": role}})
    tokens = sign_in(wallet)
    decision = authorize(tokens["access_token"])
    assert decision["isAuthorized"] is True
    context = decision["context"]
    assert context["role"] == role
    caller = User(id=context["user_id"], address=wallet.address, role=role, jti=context["jti"])
    return SignedIn(wallet, caller, tokens)


def test_a_demoted_admin_is_signed_out_everywhere(
    shared_database: Database[dict[str, Any]],
) -> None:
    # GIVEN two admins; the second also holds an older token from a first sign-in
    first = signed_in_as(shared_database, "admin")
    second = signed_in_as(shared_database, "admin")
    older = sign_in(second.wallet)
    # WHEN the first demotes the second
    reply = call(
        "users",
        "PUT",
        f"/users/{second.caller.id}/role",
        caller=first.caller,
        body={"role": "user"},
    )
    assert reply.status == 200
    assert reply.body["role"] == "user"
    # THEN every token of the second is refused, access and refresh alike
    for tokens in (second.tokens, older):
        assert authorize(tokens["access_token"])["isAuthorized"] is False
        body = {"refresh_token": tokens["refresh_token"]}
        assert call_auth("POST", "/auth/refresh", body=body).status == 401
    # AND signing in again gives a token with the new role
    again = authorize(sign_in(second.wallet)["access_token"])
    assert again["context"]["role"] == "user"
    # AND the demoting admin was not touched
    assert authorize(first.tokens["access_token"])["isAuthorized"] is True


def test_a_promoted_user_signs_in_again_to_act_as_admin(
    shared_database: Database[dict[str, Any]],
) -> None:
    admin = signed_in_as(shared_database, "admin")
    user = signed_in_as(shared_database, "user")
    reply = call(
        "users", "PUT", f"/users/{user.caller.id}/role", caller=admin.caller, body={"role": "admin"}
    )
    assert reply.status == 200
    assert authorize(user.tokens["access_token"])["isAuthorized"] is False
    assert authorize(sign_in(user.wallet)["access_token"])["context"]["role"] == "admin"


def test_a_promoted_users_old_token_is_told_to_sign_in_again_on_an_admin_route(
    shared_database: Database[dict[str, Any]],
) -> None:
    # GIVEN a user's token as API Gateway may still pass it on from its cache (its real sid)
    admin = signed_in_as(shared_database, "admin")
    user = signed_in_as(shared_database, "user")
    context = authorize(user.tokens["access_token"])["context"]
    cached = User(id=user.caller.id, address=user.wallet.address, session_id=context["sid"])
    # WHEN an admin promotes the user, which signs them out everywhere
    path = f"/users/{user.caller.id}/role"
    assert call("users", "PUT", path, caller=admin.caller, body={"role": "admin"}).status == 200
    # THEN the old token on an admin route is the revoked sign-in's 401 (README: functions answer
    # 401 for a revoked sign-in at every call), not "this route is for admins" to an admin
    for method, route in (("GET", "/users"), ("GET", f"/users/{admin.caller.id}")):
        reply = call("users", method, route, caller=cached)
        assert reply.status == 401, reply.body
        assert reply.body["detail"] == "this sign-in was revoked; sign in again"
    # AND a live plain user still gets the admin route's 403
    other = signed_in_as(shared_database, "user")
    live = authorize(other.tokens["access_token"])["context"]
    caller = User(id=other.caller.id, address=other.wallet.address, session_id=live["sid"])
    assert call("users", "GET", "/users", caller=caller).status == 403


def test_setting_the_role_a_user_already_has_signs_nobody_out(
    shared_database: Database[dict[str, Any]],
) -> None:
    admin = signed_in_as(shared_database, "admin")
    user = signed_in_as(shared_database, "user")
    reply = call(
        "users", "PUT", f"/users/{user.caller.id}/role", caller=admin.caller, body={"role": "user"}
    )
    assert reply.status == 200
    assert authorize(user.tokens["access_token"])["isAuthorized"] is True


def test_a_demotion_whose_sign_out_failed_is_finished_by_its_retry(
    shared_database: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two admins, and MongoDB failing the sign-out's write after the role was written
    # (a primary stepping down mid-request: pymongo raises AutoReconnect)
    first = signed_in_as(shared_database, "admin")
    second = signed_in_as(shared_database, "admin")
    fail_on(monkeypatch, "tokens", "update_many")
    path = f"/users/{second.caller.id}/role"
    # WHEN the first demotes the second: 503, with the role already written
    failed = call("users", "PUT", path, caller=first.caller, body={"role": "user"})
    assert failed.status == 503
    assert shared_database["users"].find_one({"_id": second.caller.id}, {"role": 1}) == {
        "_id": second.caller.id,
        "role": "user",
    }
    assert authorize(second.tokens["access_token"])["isAuthorized"] is True
    # AND the client retries once MongoDB is back, finding the role already set
    monkeypatch.undo()
    retried = call("users", "PUT", path, caller=first.caller, body={"role": "user"})
    assert retried.status == 200
    # THEN the retry signed the demoted admin out: the admin token and its refresh token
    assert authorize(second.tokens["access_token"])["isAuthorized"] is False
    body = {"refresh_token": second.tokens["refresh_token"]}
    assert call_auth("POST", "/auth/refresh", body=body).status == 401
    # AND a sign-in that carries the new role is kept by a later no-op retry
    fresh = sign_in(second.wallet)
    again = call("users", "PUT", path, caller=first.caller, body={"role": "user"})
    assert again.status == 200
    assert authorize(fresh["access_token"])["context"]["role"] == "user"
