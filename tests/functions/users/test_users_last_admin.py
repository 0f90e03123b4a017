"""The last admin stays, whatever races or fails: PUT /users/{id}/role to "user" and DELETE
/users/me by admins at once, with MongoDB losing replies, and after a holder of the admins lease
crashed.

The real users function (Mangum handler, payload 2.0 events) on real threads; MongoDB is the
in-memory store (mongomock behind its wire server, one command at a time as a server applies a
write), reached through pymongo; Redis is the real test server.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from pymongo.collection import Collection as DriverCollection
from pymongo.database import Database
from pymongo.errors import AutoReconnect

from lucid.store.documents import utcnow
from tests.utils.datastore import User, add_user, call, in_threads, stored
from tests.utils.events import Reply
from tests.utils.openapi import assert_documented, documented_headers

Db = Database[dict[str, Any]]
api = partial(call, "users")
LAST_DEMOTED = "the last admin cannot be demoted; promote another admin first"
LAST_CLOSED = "the last admin cannot close their account; promote another admin first"
BUSY = "another change to the admins is in progress; retry after Retry-After seconds"


def admins(database: Db) -> set[str]:
    return {user["_id"] for user in database["users"].find({"role": "admin"})}


def conflict(reply: Reply, detail: str) -> None:
    assert reply.status == 409, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    assert (reply.body["type"], reply.body["detail"]) == (
        "https://lucid.dev/problems/conflict",
        detail,
    )


def demote(caller: User, target: User) -> Reply:
    return api("PUT", f"/users/{target.id}/role", caller=caller, body={"role": "user"})


def test_two_demotions_whose_replies_are_lost_leave_an_admin(
    database: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two admins, and MongoDB applying each demotion but losing its reply, each demotion
    # held at its write until the other one gets there too (at most 1 s)
    first, second = add_user(database, role="admin"), add_user(database, role="admin")
    real = DriverCollection.find_one_and_update
    both_at_the_write = threading.Barrier(2)

    def applied_then_lost(self: DriverCollection[Any], *args: Any, **kwargs: Any) -> Any:
        if self.name != "users" or args[1]["$set"].get("role") != "user":
            return real(self, *args, **kwargs)
        # BrokenBarrierError: the other demotion never got this far, and ours goes alone
        with suppress(threading.BrokenBarrierError):
            both_at_the_write.wait(timeout=1)
        real(self, *args, **kwargs)
        raise AutoReconnect("primary stepped down")

    monkeypatch.setattr(DriverCollection, "find_one_and_update", applied_then_lost)
    # WHEN each admin demotes the other at the same moment
    replies = in_threads(2, lambda i: demote((first, second)[i], (second, first)[i]))
    monkeypatch.undo()
    # THEN one demotion was written (its reply lost: 503), the other refused: one admin is left
    # (1a11ddf: both passed the count, both were written, neither undone: no admin at all)
    assert len(admins(database)) == 1
    lost, refused = sorted(replies, key=lambda reply: reply.status, reverse=True)
    assert lost.status == 503
    # the loser is refused as the last admin, or (its caller demoted first) as no admin at all
    if refused.status == 409:
        conflict(refused, LAST_DEMOTED)
    else:
        assert refused.status == 403
    # AND the lease is free again: the one still admin may demote the other's retry away
    assert database["locks"].count_documents({}) == 0


@pytest.mark.parametrize("round_", range(3))
def test_admins_leaving_at_once_always_leave_exactly_one(database: Db, round_: int) -> None:
    # GIVEN eight admins (and a plain user), half closing their accounts and half demoting
    # themselves, all at once; a third party reads the admins throughout
    team = [add_user(database, role="admin") for _ in range(8)]
    add_user(database)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(database["users"].count_documents({"role": "admin"}))

    def leave(i: int) -> Reply:
        member = team[i]
        if i % 2:
            return api("DELETE", "/users/me", caller=member)
        return demote(member, member)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        replies = in_threads(len(team), leave)
    finally:
        done.set()
        watcher.join(timeout=30)
    # THEN all but one left, in whichever order they got there; the one refused is the admin
    # that remains, with a precise 409 (1a11ddf: racing demotions undid each other and refused
    # more than one, and a reader saw no admin between a demotion and its undo)
    statuses = sorted(reply.status for reply in replies)
    assert statuses in ([200] * 3 + [204] * 4 + [409], [200] * 4 + [204] * 3 + [409])
    (stays,) = [i for i, reply in enumerate(replies) if reply.status == 409]
    conflict(replies[stays], LAST_CLOSED if stays % 2 else LAST_DEMOTED)
    assert admins(database) == {team[stays].id}
    assert min(seen) >= 1
    # AND nothing is half written: each who left is either a plain user now or gone entirely
    for i, member in enumerate(team):
        if i == stays:
            continue
        if i % 2:
            assert database["users"].find_one({"_id": member.id}) is None
        else:
            assert stored(database["users"], member.id)["role"] == "user"
    assert database["locks"].count_documents({}) == 0


def test_a_crashed_holders_lease_holds_off_demotions_for_its_lease_only(database: Db) -> None:
    # GIVEN two admins, and a request that took the admins lease and died (its Lambda
    # environment reset) 59.5 s ago: the lease document it leaves has 0.5 s to run
    first, second = add_user(database, role="admin"), add_user(database, role="admin")
    expires_at = utcnow() + timedelta(seconds=0.5)
    database["locks"].insert_one({"_id": "admins", "owner": "0" * 32, "expires_at": expires_at})
    # WHEN an admin demotes the other, THEN it waits out the lease and goes through
    reply = demote(first, second)
    assert reply.status == 200
    assert reply.body["role"] == "user"
    assert admins(database) == {first.id}
    assert database["locks"].count_documents({}) == 0


def test_a_lease_still_held_is_a_409_with_retry_after_and_changes_nothing(
    database: Db,
) -> None:
    # GIVEN two admins, and the admins lease held for another 30 s by a holder that crashed
    first, second = add_user(database, role="admin"), add_user(database, role="admin")
    expires_at = utcnow() + timedelta(seconds=30)
    database["locks"].insert_one({"_id": "admins", "owner": "0" * 32, "expires_at": expires_at})
    # WHEN an admin demotes the other: it waits 5 s for the lease, then gives up
    reply = demote(first, second)
    # THEN a 409 that says when to come back, and nobody was demoted
    conflict(reply, BUSY)
    assert 20 <= int(reply.headers["retry-after"]) <= 30
    # AND the published document declares it for this 409 (not required: the last-admin refusal,
    # also a 409 there, has none)
    assert_documented(reply, "PUT", "/users/{id}/role", "Retry-After")
    assert documented_headers("PUT", "/users/{id}/role", 409)["Retry-After"] is False
    assert admins(database) == {first.id, second.id}
    # AND a plain user's closure needs no lease: it goes through meanwhile
    plain = add_user(database)
    assert api("DELETE", "/users/me", caller=plain).status == 204
