"""The sessions repository as a route dependency (the users one: `lucid.web.user_repository`).

Apart from `lucid.web.deps` so that a function needing no repository (meta, proxy) imports none
of them at cold start (about 12 ms in the development virtualenv), and apart from each other so
that the sessions function does not import the users repository (~0.6 ms of its cold start).
Each one ensures the indexes on the first request of a cold start, and is built once per
process (`lucid.web.stores.once_per_database`): a repository is configuration over the
database, nothing of a request. They find the database
through the request (`lucid.web.stores`), not through a `DatabaseDep` of their own: one
dependency less for FastAPI to resolve on every call.
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import Annotated

from fastapi import Depends, Request
from pymongo.database import Database

from lucid.sessions.repository import SessionRepository
from lucid.store.documents import Document
from lucid.store.indexes import ensure_indexes_once
from lucid.web.stores import once_per_database


def _built(database: Database[Document]) -> SessionRepository:
    ensure_indexes_once(database)
    return SessionRepository(database)


_repository = once_per_database(_built)


async def session_repository(request: Request) -> SessionRepository:
    """The sessions repository on the app's database (indexes ensured on first use; built
    once, as it holds no state of a request)."""
    return _repository(request.scope)


SessionsDep = Annotated[SessionRepository, Depends(session_repository)]
