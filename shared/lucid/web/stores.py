"""Where a function's dependencies find Redis and MongoDB: the process's clients, or the app's own.

The signed-in path resolves as few FastAPI dependencies as it can: FastAPI spends 10-20 µs of
CPU per dependency and request on resolving it (issue 11's profile: `Caller` with its Redis and
database sub-dependencies, and a repository with its database one, cost ~50 µs per GET
/users/me more than the same work in two dependencies). So the caller check, the repositories
and the idempotency store take the stores from the app, one attribute lookup, instead of from
dependencies of their own.

An app serves the process's clients (built once per cold start, `lucid.store`) unless someone
points it elsewhere with `use_stores` (the tests: a fresh in-memory database per test, a Redis
that is down). Neither the Redis client nor pymongo is built before a route first asks, and
pymongo is not imported at all until then: the proxy function never needs it (cold start,
`lucid.web.database`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from starlette.types import Scope

if TYPE_CHECKING:
    from fastapi import FastAPI
    from pymongo.database import Database

    from lucid.store import resp
    from lucid.store.documents import Document

_ATTRIBUTE = "lucid_stores"


# The process's store getters, imported at their first call (not at import: see the docstring),
# then kept: an import statement costs ~7.5 K instructions even once its module is loaded (CPython
# 3.11 import.c import_ensure_initialized reads `__spec__._initializing`, an AttributeError raised
# and cleared; valgrind), and a POST /sessions asks for a store three times.
@functools.cache
def _redis_getter() -> Callable[[], resp.Redis]:
    from lucid.store.redis_client import get_redis

    return get_redis


@functools.cache
def _database_getter() -> Callable[[], Database[Document]]:
    from lucid.store.mongo import get_database

    return get_database


def _process_redis() -> resp.Redis:
    return _redis_getter()()


def _process_database() -> Database[Document]:
    return _database_getter()()


class Stores(NamedTuple):
    """How an app reaches its stores: each a function called when a request needs that store."""

    redis: Callable[[], resp.Redis] = _process_redis
    database: Callable[[], Database[Document]] = _process_database


PROCESS_STORES = Stores()


def use_stores(app: FastAPI, stores: Stores) -> Stores:
    """Make `app`'s routes use `stores` from its next request on; returns what it used before."""
    previous = stores_of_app(app)
    setattr(app.state, _ATTRIBUTE, stores)
    return previous


def stores_of_app(app: FastAPI) -> Stores:
    """The stores `app` uses (the process's unless `use_stores` said otherwise)."""
    # From the state's dict, not getattr(app.state, ..., None): while nothing was set (every app
    # in service), starlette's State.__getattr__ raises an AttributeError that getattr catches,
    # ~14 K instructions at each of a request's look-ups (starlette 1.10.0 datastructures.py
    # State, whose attributes live in `_state`; valgrind).
    stores: Stores | None = app.state._state.get(_ATTRIBUTE)
    return stores if stores is not None else PROCESS_STORES


def stores_of(scope: Scope) -> Stores:
    """The stores of the app serving the request behind `scope`."""
    return stores_of_app(scope["app"])


_T = TypeVar("_T")


def once_per_database(build: Callable[[Database[Document]], _T]) -> Callable[[Scope], _T]:
    """`build(database)` for the database of the app serving a request, built when a request
    first meets that database (the process has one) and then reused.

    For what is only configuration over a database (a repository: its collections, its lease's
    settings) and would otherwise be built again at every request. The last database only is
    remembered, by identity: a test that points an app at a fresh database gets a fresh one,
    and no database is kept alive beside the one in use.
    """
    last: list[tuple[Database[Document], _T]] = []

    def of(scope: Scope) -> _T:
        database = stores_of(scope).database()
        known = last[0] if last else None
        if known is not None and known[0] is database:
            return known[1]
        built = build(database)
        last[:] = [(database, built)]
        return built

    return of
