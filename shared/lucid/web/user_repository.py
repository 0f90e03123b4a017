"""The users repository as a route dependency (apart from `lucid.web.repositories`, so that the
sessions function, which needs only the sessions repository, does not import it)."""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import Annotated

from fastapi import Depends, Request

from lucid.store.indexes import ensure_indexes_once
from lucid.users.repository import UserRepository
from lucid.web.stores import stores_of


async def user_repository(request: Request) -> UserRepository:
    """The users repository on the app's database (indexes ensured on first use)."""
    database = stores_of(request.scope).database()
    ensure_indexes_once(database)
    return UserRepository(database)


UsersDep = Annotated[UserRepository, Depends(user_repository)]
