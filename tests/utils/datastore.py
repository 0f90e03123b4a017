"""Users, callers and a per-test MongoDB for the users and sessions functions.

MongoDB in these tests is the local edge's in-memory store (`lucid_edge.local.in_memory_database`,
mongomock), one fresh database per test, injected into the functions with
`lucid.web.stores.use_stores`. mongomock does not make a
single write atomic across threads (its `find_one_and_update` is a find followed by an update by
`_id`), while MongoDB does; `atomic_writes()` restores the server's guarantee (each write operation
runs alone) so concurrency tests exercise our code's atomicity, not mongomock's gaps.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from mongomock.collection import Collection
from pymongo.collection import Collection as DriverCollection
from pymongo.database import Database
from pymongo.errors import AutoReconnect

from lucid.auth.revocation import LEEWAY_SECONDS, RevocationList
from lucid.auth.revocation_record import MongoRevocationRecord
from lucid.store import fast_reads, fast_writes, resp
from lucid.store.documents import Document, new_id, utcnow
from lucid.store.redis_client import get_redis
from lucid.web.stores import Stores, stores_of_app, use_stores
from lucid_edge.local import in_memory_database
from tests.utils.events import Reply, http_event, lambda_context, reply_from
from tests.utils.functions import load_module

_WRITES = (
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "find_one_and_update",
    "find_one_and_delete",
    "find_one_and_replace",
)


@contextmanager
def atomic_writes() -> Iterator[None]:
    """Make every mongomock write operation atomic (one at a time), as on a MongoDB server."""
    lock = threading.RLock()
    originals = {name: getattr(Collection, name) for name in _WRITES}

    def locked(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def write(self: Collection, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return write

    for name, original in originals.items():
        setattr(Collection, name, locked(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(Collection, name, original)


@contextmanager
def database_for(
    *groups: str, database: Database[Document] | None = None
) -> Iterator[Database[Document]]:
    """`database` (default: a fresh mongomock one) injected into the functions `groups`, and
    into the authorizer as the record of revocations it reads when Redis cannot answer."""
    db: Database[Document] = database if database is not None else in_memory_database()
    authorizer: Any = load_module("authorizer")  # a function module: its names are not typed
    revocations = authorizer._revocations  # a function: the list is built on first use
    injected = revocations_on(get_redis(), db, revocations().horizon_seconds - LEEWAY_SECONDS)
    authorizer._revocations = lambda: injected
    apps = [load_module(group).app for group in groups]
    previous = [
        use_stores(app, Stores(redis=stores_of_app(app).redis, database=lambda: db)) for app in apps
    ]
    try:
        yield db
    finally:
        for app, before in zip(apps, previous, strict=True):
            use_stores(app, before)
        authorizer._revocations = revocations


@dataclass
class User:
    """A signed-in user as the authorizer describes it."""

    id: str
    address: str
    role: str = "user"
    jti: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    session_id: str = field(default_factory=new_id)
    extra_context: dict[str, Any] = field(default_factory=dict)

    @property
    def context(self) -> dict[str, Any]:
        """The authorizer's `lambda` context for this user."""
        return {
            "user_id": self.id,
            "address": self.address,
            "role": self.role,
            "tier": "admin" if self.role == "admin" else "authenticated",
            "jti": self.jti,
            "sid": self.session_id,
            **self.extra_context,
        }


class CountingRecord(MongoRevocationRecord):
    """The MongoDB record, counting how often it is asked."""

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        super().__init__(database)
        self.asked = 0

    def is_revoked(self, sid: str) -> bool:
        self.asked += 1
        return super().is_revoked(sid)

    def revoked_since(self, since: datetime) -> dict[str, datetime]:
        self.asked += 1
        return super().revoked_since(since)


def revocations_on(
    client: resp.Redis, database: Database[Document], token_lifetime_seconds: int = 900
) -> RevocationList:
    """The revoked sign-ins of `database` with their copy in the Redis `client`."""
    return RevocationList(
        client,
        lambda: MongoRevocationRecord(database),
        token_lifetime_seconds=token_lifetime_seconds,
    )


def add_user(database: Database[Document], role: str = "user", **fields: Any) -> User:
    """Store a user document (the shape auth's sign-in creates) and return the caller."""
    user = User(id=new_id(), address="T" + secrets.token_hex(16), role=role)
    now = utcnow()
    database["users"].insert_one(
        {
            "_id": user.id,
            "address": user.address,
            "role": role,
            "display_name": None,
            "email": None,
            "preferences": {},
            "created_at": now,
            "updated_at": now,
            **fields,
        }
    )
    return user


def call(
    group: str,
    method: str,
    path: str,
    *,
    caller: User | None,
    body: Any = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> Reply:
    """Invoke functions/<group> with a payload 2.0 event carrying `caller`'s authorizer context."""
    event = http_event(
        method,
        path,
        body=body,
        query=query,
        headers=headers,
        authorizer=caller.context if caller is not None else None,
    )
    return reply_from(load_module(group).handler(event, lambda_context(group)))


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in range(count) on `count` threads released together; the results.

    Each thread gets its own event loop (Mangum runs one per invocation thread) and closes it.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    # Switch threads far more often than the default 5 ms, so that a read-then-write race in
    # the code under test actually interleaves instead of each request running in one slice.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    return results


def stored(collection: Any, document_id: str) -> Document:
    """The stored document `document_id` of `collection`, which must exist."""
    document: Document | None = collection.find_one({"_id": document_id})
    assert document is not None, f"{document_id} is not in {collection.name}"
    return document


def fail_on(
    monkeypatch: pytest.MonkeyPatch, collection: str, method: str, *, applied: bool = False
) -> None:
    """Make pymongo's `method` on the collection `collection` raise AutoReconnect, as it does when
    a primary steps down mid-request: before the operation, or with `applied` after the server
    applied it (its reply was lost). Patched on the client side, since the functions reach the
    in-memory store through pymongo and its wire server (`find_one` and `insert_one`: through
    the fast paths of reads by id and of the session's insert too). `monkeypatch.undo()` heals
    it."""
    real = getattr(DriverCollection, method)

    def failing(self: DriverCollection[Any], *args: Any, **kwargs: Any) -> Any:
        if self.name != collection:
            return real(self, *args, **kwargs)
        if applied:
            real(self, *args, **kwargs)
        raise AutoReconnect("primary stepped down")

    monkeypatch.setattr(DriverCollection, method, failing)
    fast = {"find_one": fast_reads, "insert_one": fast_writes}.get(method)
    if fast is not None:
        # Reads by id and the session's insert go to the server through `lucid.store.fast_reads`
        # and `fast_writes` first: fail them there too (pymongo's method, which they hand
        # faults to, fails above).
        real_fast = getattr(fast, method)

        def failing_fast(target: DriverCollection[Any], *args: Any) -> Any:
            if target.name != collection:
                return real_fast(target, *args)
            return failing(target, *args)

        monkeypatch.setattr(fast, method, failing_fast)
