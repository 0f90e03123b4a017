"""The repositories as route dependencies.

Apart from `lucid.web.deps` so that a function needing no repository (meta, proxy) imports none
of them at cold start (about 12 ms in the development virtualenv). Each one ensures the indexes
on the first request of a cold start.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from lucid.sessions.repository import SessionRepository
from lucid.store.indexes import ensure_indexes_once
from lucid.users.repository import UserRepository
from lucid.web.database import DatabaseDep


async def session_repository(database: DatabaseDep) -> SessionRepository:
    """The sessions repository on the process's database (indexes ensured on first use)."""
    ensure_indexes_once(database)
    return SessionRepository(database)


async def user_repository(database: DatabaseDep) -> UserRepository:
    """The users repository on the process's database (indexes ensured on first use)."""
    ensure_indexes_once(database)
    return UserRepository(database)


SessionsDep = Annotated[SessionRepository, Depends(session_repository)]
UsersDep = Annotated[UserRepository, Depends(user_repository)]
