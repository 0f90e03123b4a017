"""Admin powers follow the role stored at the time of the action, not the one the token (and the
authorizer decision API Gateway cached) carries: here the role changes in MongoDB with no
revocation at all, the way an operator's direct change would, so only the stored-role check can
notice it."""

from __future__ import annotations

from functools import partial
from typing import Any

from pymongo.database import Database

from tests.utils.datastore import User, add_user, call

users_api = partial(call, "users")
sessions_api = partial(call, "sessions")


def test_an_admin_demoted_in_storage_acts_as_a_user_at_the_next_call(
    admin: User, alice: User, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a second admin (so one may be demoted) whose token says admin, and a user's session
    former = add_user(database, role="admin")
    session = sessions_api("POST", "/sessions", caller=alice, body={"name": "hers"}).body["id"]
    assert users_api("GET", "/users", caller=former).status == 200
    # WHEN the stored role becomes user (the cached decision still says admin)
    database["users"].update_one({"_id": former.id}, {"$set": {"role": "user"}})
    # THEN every admin power is gone: the admin routes are 403 ...
    assert users_api("GET", "/users", caller=former).status == 403
    promotion = users_api("PUT", f"/users/{alice.id}/role", caller=former, body={"role": "admin"})
    assert promotion.status == 403
    stored = database["users"].find_one({"_id": alice.id})
    assert stored is not None
    assert stored["role"] == "user"
    # ... and someone else's profile and sessions answer as for any user: not found
    assert users_api("GET", f"/users/{alice.id}", caller=former).status == 404
    assert sessions_api("GET", f"/sessions/{session}", caller=former).status == 404
    listing = sessions_api("GET", "/sessions", caller=former, query=f"owner_id={alice.id}")
    assert listing.status == 404
    ended = sessions_api("DELETE", f"/sessions/{session}", caller=former)
    assert ended.status == 404
    # AND their own profile still works (they are a user, not signed out)
    assert users_api("GET", "/users/me", caller=former).body["role"] == "user"
    # AND the admin who still is one keeps every power
    assert users_api("GET", f"/users/{alice.id}", caller=admin).status == 200


def test_an_admin_token_of_a_deleted_account_is_refused(
    admin: User, database: Database[dict[str, Any]]
) -> None:
    gone = add_user(database, role="admin")
    database["users"].delete_one({"_id": gone.id})
    assert users_api("GET", "/users", caller=gone).status == 403
    reply = sessions_api("GET", "/sessions", caller=gone)
    assert (reply.status, reply.body["detail"]) == (401, "the account was closed")
