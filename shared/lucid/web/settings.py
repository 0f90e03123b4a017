"""The process's settings as a route dependency (`SettingsDep`).

Apart from `lucid.web.deps` (which re-exports it) so that routes needing nothing but settings,
like the meta function's, import neither the Redis client nor pymongo at cold start.
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import Annotated

from fastapi import Depends

from lucid.config import Settings, get_settings


async def current_settings() -> Settings:
    """The process's settings (override this in tests, not `get_settings`)."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(current_settings)]
