"""A lease lock in MongoDB: work that must run one at a time across every instance of every
function, on a standalone server as on a replica set (no transactions, MONGODB_URI alone).

One document per guarded thing in the `locks` collection:

    _id          the lease's name (e.g. "admins")
    owner        a random token of the holder (only it may release)
    expires_at   UTC datetime: the lease is free from then on, whoever held it

Taking it is one conditional upsert, `{_id: name, expires_at: {$not: {$gt: now}}}` setting the
owner and a new expiry, acknowledged by a majority (a failover cannot roll it back). MongoDB
applies an update to one document atomically, so of any number of takers at most one gets it:

    no document        the upsert inserts one: taken
    an expired one     it matches and is overwritten: taken (a crashed holder's lease ends here;
                       so does one without a date, made by hand)
    a live one         nothing matches, so the upsert inserts `_id: name`, which exists:
                       duplicate key (E11000): busy, wait and try again

The server retries an upsert's duplicate key itself only when the key equals the query exactly
(SERVER-37124, and SERVER-47212 for findAndModify); this query also holds `expires_at`, so the
duplicate key reaches us, and a retry would find the same live lease anyway. On a replica set
a lost reply to the taking is retried once by pymongo as the same write (retryable writes); on a
standalone server it is a 503 and we try to release by our token, else the lease expires.

Releasing deletes `{_id: name, owner: token}`: our own lease only, never one taken after ours
expired. A holder that crashes, times out or loses MongoDB never releases: its lease ends at
`expires_at`, so nothing waits longer than one lease (LEASE_SECONDS).

The lease only serialises writers if no holder outlives it. LEASE_SECONDS (60) is longer than
anything a holder can take: a Lambda function's Timeout is at most 29 s here (API Gateway's
30 s integration limit; Lambda resets an environment whose invocation timed out, so nothing of
it runs on), and a holder checks before its guarded write (`Held.check`) that the write,
bounded by the client's operation timeout (`timeoutMS`, MONGODB_TIMEOUT_MS ≤ 30 s), lands
before the lease could expire, with CLOCK_SKEW_SECONDS to spare: expiry is compared on each
instance's own clock (our assumption: NTP-synchronised hosts differ by far less than 5 s; no
AWS figure was found).
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import NamedTuple

from pymongo import WriteConcern
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from lucid.errors import ConflictError, ServiceUnavailableError
from lucid.store.documents import Document, database_errors, new_id, utcnow

COLLECTION = "locks"
LEASE_SECONDS = 60.0
WAIT_SECONDS = 5.0
CLOCK_SKEW_SECONDS = 5.0
_FIRST_POLL_SECONDS = 0.005
_MAX_POLL_SECONDS = 0.2


class Held(NamedTuple):
    """A lease this process holds: `check()` before each write the lease guards."""

    name: str
    taken_at: float  # time.monotonic() just before the taking was sent
    budget: float  # seconds after `taken_at` by which a guarded write must have been sent

    def check(self) -> None:
        """ServiceUnavailableError (503, nothing written) when a write sent now could land
        after the lease expired, i.e. after another holder may have taken it."""
        if time.monotonic() - self.taken_at > self.budget:
            raise ServiceUnavailableError(f"the {self.name} lease ran out before the change")


class Lease:
    """The lease `name` in `database` (see the module docstring)."""

    def __init__(
        self,
        database: Database[Document],
        name: str,
        *,
        busy: str,
        seconds: float = LEASE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        """`busy` is the 409's detail when the lease stays taken for `wait_seconds`."""
        # Acknowledged by a majority (MongoDB 5.0+'s default, not 4.2/4.4's): a taking only the
        # old primary had would be rolled back at a failover, and a second holder could enter.
        # A standalone server accepts "majority" too (it acknowledges after its journal).
        self._locks = database.get_collection(COLLECTION, write_concern=WriteConcern("majority"))
        self._name = name
        self._busy = busy
        self._seconds = seconds
        self._wait = wait_seconds
        # pymongo's `timeoutMS` in seconds: the longest one write can take (None: unbounded).
        timeout = database.client.options.timeout
        write_bound = self._seconds if timeout is None else timeout
        self._budget = self._seconds - write_bound - CLOCK_SKEW_SECONDS
        if self._budget <= 0:
            raise ValueError(
                f"a {seconds} s lease leaves no time for a write bounded by {write_bound} s"
            )

    @contextmanager
    def held(self) -> Iterator[Held]:
        """Hold the lease for the block; 409 with Retry-After when it stays taken."""
        token = new_id()
        taken_at = self._take(token)
        try:
            yield Held(self._name, taken_at, self._budget)
        finally:
            self._release(token)

    def _take(self, token: str) -> float:
        deadline = time.monotonic() + self._wait
        poll = _FIRST_POLL_SECONDS
        while True:
            started = time.monotonic()
            now = utcnow()
            try:
                with database_errors(COLLECTION, self._locks):
                    self._locks.update_one(
                        # Not "$lte": one without a date (made by hand) is free too.
                        {"_id": self._name, "expires_at": {"$not": {"$gt": now}}},
                        {"$set": {"owner": token, "expires_at": self._expiry(now)}},
                        upsert=True,
                    )
                return started
            except DuplicateKeyError:
                pass
            except ServiceUnavailableError:
                # The taking may have been applied and its reply lost: give it back if so.
                self._release(token)
                raise
            if time.monotonic() >= deadline:
                raise ConflictError(self._busy, headers={"Retry-After": self._retry_after()})
            # Jittered backoff: holders keep a lease for a few round trips, and waiters that
            # poll in step would meet again on every try.
            time.sleep(poll * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret
            poll = min(poll * 2, _MAX_POLL_SECONDS)

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._seconds)

    def _release(self, token: str) -> None:
        # Best effort: a release that fails leaves the lease to expire, never a wrong holder.
        with suppress(PyMongoError):
            self._locks.delete_one({"_id": self._name, "owner": token})

    def _retry_after(self) -> str:
        """Whole seconds until the current lease expires (at least 1)."""
        with suppress(PyMongoError):
            current = self._locks.find_one({"_id": self._name}, {"expires_at": 1})
            if current is not None:
                left = (current["expires_at"] - utcnow()).total_seconds()
                return str(max(1, min(math.ceil(left), math.ceil(self._seconds))))
        return "1"
