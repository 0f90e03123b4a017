"""Sessions: schemas, lifecycle, the repository and the dependency routes declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from lucid.deps import DatabaseDep
from lucid.indexes import ensure_indexes_once
from lucid.sessions.repository import SessionRepository


async def session_repository(database: DatabaseDep) -> SessionRepository:
    """The sessions repository on the process's database (indexes ensured on first use)."""
    ensure_indexes_once(database)
    return SessionRepository(database)


SessionsDep = Annotated[SessionRepository, Depends(session_repository)]

__all__ = ["SessionRepository", "SessionsDep", "session_repository"]
