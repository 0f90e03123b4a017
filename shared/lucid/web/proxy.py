"""The proxy as a route dependency, apart from `lucid.web.deps` so that only the proxy function
imports httpcore and the breakers at cold start."""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from typing import Annotated

from fastapi import Depends

from lucid.proxy.client import get_proxy
from lucid.proxy.forwarder import Proxy


async def current_proxy() -> Proxy:
    """The process's proxy (async: a plain dependency costs a thread hop per request)."""
    return get_proxy()


ProxyDep = Annotated[Proxy, Depends(current_proxy)]
