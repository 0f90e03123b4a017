"""The process's MongoDB database as a route dependency (`DatabaseDep`).

Apart from `lucid.web.deps` so that a function whose routes need no database (the proxy) never
imports pymongo at cold start: 30-55 ms of the built artifact's (`make bench coldstart`).
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import Annotated

from fastapi import Depends, Request
from pymongo.database import Database

from lucid.store.documents import Document
from lucid.web.stores import stores_of


async def current_database(request: Request) -> Database[Document]:
    """The app's MongoDB database (the process's unless `lucid.web.stores.use_stores` says
    other)."""
    return stores_of(request.scope).database()


DatabaseDep = Annotated[Database[Document], Depends(current_database)]
