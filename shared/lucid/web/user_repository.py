"""The users repository as a route dependency (apart from `lucid.web.repositories`, so that the
sessions function, which needs only the sessions repository, does not import it)."""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import Annotated

from fastapi import Depends, Request
from pymongo.database import Database

from lucid.store.documents import Document
from lucid.store.indexes import ensure_indexes_once
from lucid.users.repository import UserRepository
from lucid.web.stores import once_per_database


def _built(database: Database[Document]) -> UserRepository:
    ensure_indexes_once(database)
    return UserRepository(database)


_repository = once_per_database(_built)


async def user_repository(request: Request) -> UserRepository:
    """The users repository on the app's database (indexes ensured on first use; built once,
    as it holds no state of a request)."""
    return _repository(request.scope)


UsersDep = Annotated[UserRepository, Depends(user_repository)]
