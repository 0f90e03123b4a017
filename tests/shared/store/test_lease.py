"""The MongoDB lease lock (`lucid.store.lease`): one holder at a time across real threads, busy
refused with Retry-After, a crashed holder's lease expiring, releases by the owner only.

MongoDB is the in-memory store (mongomock) reached through pymongo and its wire server, which
runs one command at a time as a server applies one write to one document atomically.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from pymongo.collection import Collection as DriverCollection
from pymongo.database import Database
from pymongo.errors import AutoReconnect

from lucid.config import Settings
from lucid.errors import ConflictError, ServiceUnavailableError
from lucid.store.documents import utcnow
from lucid.store.lease import CLOCK_SKEW_SECONDS, Lease
from lucid.store.mongo import build_database
from tests.utils.datastore import in_threads, stored

Db = Database[dict[str, Any]]


def lease(db: Db, **options: Any) -> Lease:
    return Lease(db, "guard", busy="busy, retry", **options)


def crashed_holder(db: Db, *, expires_in: float) -> None:
    """The document a holder leaves when it dies without releasing (a taking never undone)."""
    expires_at = utcnow() + timedelta(seconds=expires_in)
    db["locks"].insert_one({"_id": "guard", "owner": "dead" * 8, "expires_at": expires_at})


def owner(db: Db) -> str:
    holder: str = stored(db["locks"], "guard")["owner"]
    return holder


def timeout(db: Db) -> float:
    seconds = db.client.options.timeout
    assert seconds is not None
    return seconds


def test_one_holder_at_a_time_across_threads(db: Db) -> None:
    # GIVEN many threads taking one lease at once, each holding it over a few round trips
    guard, inside, most = lease(db, wait_seconds=20), [0], [0]
    counter = threading.Lock()

    def work(_: int) -> None:
        with guard.held():
            with counter:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            db["scratch"].find_one({})  # a round trip while holding: others get to try
            with counter:
                inside[0] -= 1

    in_threads(12, work)
    # THEN each got it in turn, never two at once, and nothing is left held
    assert most[0] == 1
    assert db["locks"].count_documents({}) == 0


def test_a_live_lease_refuses_with_retry_after_and_changes_nothing(db: Db) -> None:
    crashed_holder(db, expires_in=30)
    started = time.monotonic()
    with pytest.raises(ConflictError) as refused, lease(db, wait_seconds=0.2).held():
        pytest.fail("took a live lease")
    assert time.monotonic() - started >= 0.2  # it waited for the holder first
    assert refused.value.detail == "busy, retry"
    assert refused.value.headers["Retry-After"] in {"29", "30"}
    assert owner(db) == "dead" * 8


def test_a_live_lease_whose_expiry_cannot_be_read_still_says_retry_after_1(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a live lease, and MongoDB failing the read of its expiry after the taking was refused
    crashed_holder(db, expires_in=30)

    def unreachable(self: DriverCollection[Any], *args: Any, **kwargs: Any) -> Any:
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(DriverCollection, "find_one", unreachable)
    # WHEN a taker gives up THEN it is still the 409 with a usable Retry-After
    with pytest.raises(ConflictError) as refused, lease(db, wait_seconds=0.05).held():
        pytest.fail("took a live lease")
    assert refused.value.headers == {"Retry-After": "1"}


@pytest.mark.parametrize(
    ("left", "retry_after"),
    [
        (timedelta(seconds=1.2), "2"),  # whole seconds, rounded up
        (timedelta(milliseconds=400), "1"),  # under a second left: never "0"
        (timedelta(0), "1"),  # expiring as the refusal is answered
        (timedelta(milliseconds=-200), "1"),  # expired between the refused taking and the read
    ],
)
def test_a_lease_about_to_expire_says_retry_after_at_least_1(
    db: Db, monkeypatch: pytest.MonkeyPatch, left: timedelta, retry_after: str
) -> None:
    # GIVEN a live lease, and the lease's clock reading `left` before its expiry once the
    # taking was refused (the clock is pinned: a real lease with under 1 s left would race)
    expires_at = utcnow() + timedelta(seconds=30)
    db["locks"].insert_one({"_id": "guard", "owner": "dead" * 8, "expires_at": expires_at})
    readings = iter([expires_at - timedelta(seconds=10), expires_at - left])
    monkeypatch.setattr("lucid.store.lease.utcnow", lambda: next(readings))
    # WHEN a taker that does not wait is refused
    with pytest.raises(ConflictError) as refused, lease(db, wait_seconds=0).held():
        pytest.fail("took a live lease")
    # THEN Retry-After is the whole seconds left, at least 1 (RFC 9110 section 10.2.3: a
    # non-negative delay; "0" would send a client straight back into the lease)
    assert refused.value.headers == {"Retry-After": retry_after}
    assert owner(db) == "dead" * 8


def test_a_crashed_holders_lease_expires_and_the_next_taker_gets_it(db: Db) -> None:
    # GIVEN a holder that died with 0.3 s of its lease left
    crashed_holder(db, expires_in=0.3)
    # WHEN another takes it, waiting up to 5 s, THEN it gets it once the lease ran out
    started = time.monotonic()
    with lease(db).held():
        assert owner(db) != "dead" * 8
    assert 0.2 <= time.monotonic() - started < 5
    assert db["locks"].count_documents({}) == 0


def test_a_lease_document_without_a_date_never_blocks(db: Db) -> None:
    # GIVEN a lease document made by hand, with no expiry
    db["locks"].insert_one({"_id": "guard", "owner": "hand" * 8})
    # THEN it counts as expired: taken at once
    with lease(db, wait_seconds=0).held():
        assert owner(db) != "hand" * 8


def test_a_release_takes_only_its_own_lease(db: Db) -> None:
    # GIVEN a holder whose lease ran out and was taken by another meanwhile
    with lease(db).held():
        db["locks"].update_one({"_id": "guard"}, {"$set": {"owner": "next" * 8}})
    # THEN its release left the other's lease alone
    assert owner(db) == "next" * 8


def test_a_taking_whose_reply_was_lost_is_given_back(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN MongoDB applies the taking but the reply is lost (a standalone server: no retry)
    real = DriverCollection.update_one

    def lost_reply(self: DriverCollection[Any], *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(DriverCollection, "update_one", lost_reply)
    with pytest.raises(ServiceUnavailableError), lease(db).held():
        pytest.fail("held a lease it could not confirm")
    # THEN the lease is released at once rather than left to expire
    monkeypatch.undo()
    assert db["locks"].count_documents({}) == 0


def test_a_holder_too_slow_for_its_lease_writes_nothing(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a holder whose write could no longer land before its lease expires
    with lease(db).held() as held:
        clock = time.monotonic() + held.budget + 0.1
        monkeypatch.setattr(time, "monotonic", lambda: clock)
        # THEN it must not write: 503
        with pytest.raises(ServiceUnavailableError, match="lease ran out"):
            held.check()
    # The budget leaves the longest write (timeoutMS) and the clock skew inside the lease.
    assert held.budget == 60 - timeout(db) - CLOCK_SKEW_SECONDS


def test_a_taking_survives_a_failover(db: Db) -> None:
    # A taking acknowledged by the old primary alone would be rolled back (MongoDB 4.2/4.4
    # default to w:1): the lease asks a majority, which a standalone server also accepts
    guard = lease(db)
    assert guard._locks.write_concern.document == {"w": "majority"}
    with guard.held():
        assert owner(db) != "dead" * 8


def test_a_lease_too_short_for_one_write_is_refused(db: Db) -> None:
    with pytest.raises(ValueError, match="leaves no time"):
        lease(db, seconds=timeout(db))


def test_a_lease_is_refused_exactly_when_it_leaves_no_time_after_a_write_and_the_skew(
    db: Db,
) -> None:
    # GIVEN leases as long as a write's bound and the clock skew, and one second longer
    exact = timeout(db) + CLOCK_SKEW_SECONDS
    # THEN the first leaves no time for the write to land inside it, the second leaves a second
    with pytest.raises(ValueError, match="leaves no time"):
        lease(db, seconds=exact)
    with lease(db, seconds=exact + 1).held() as held:
        assert held.budget == 1


def test_the_longest_mongodb_timeout_still_leaves_a_write_time_in_the_lease() -> None:
    # MONGODB_TIMEOUT_MS at its upper bound (30 s, lucid.config): the lease can still be built
    settings = Settings(MONGODB_URI="mongodb://127.0.0.1:1", MONGODB_TIMEOUT_MS=30000)
    database = build_database(settings)  # connects lazily: nothing is reached here
    try:
        assert timeout(database) == 30
        lease(database)
    finally:
        database.client.close()
