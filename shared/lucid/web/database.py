"""The process's MongoDB database as a route dependency (`DatabaseDep`).

Apart from `lucid.web.deps` so that a function whose routes need no database (the proxy) never
imports pymongo at cold start: 30-55 ms of the built artifact's (`make bench coldstart`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pymongo.database import Database

from lucid.store.documents import Document
from lucid.store.mongo import get_database


async def current_database() -> Database[Document]:
    """The process's MongoDB database."""
    return get_database()


DatabaseDep = Annotated[Database[Document], Depends(current_database)]
