"""Authorizer function: the Lambda REQUEST authorizer of the HTTP API. Wiring only.

A plain handler, not FastAPI: the event is not an HTTP request but a question ("may this
Authorization header call this route?"), and this runs before every protected call.
"""

from typing import Any

from lucid.auth.authorizer import authorize
from lucid.auth.keys import check_keys_at_cold_start
from lucid.auth.tokens import get_token_service
from lucid.observability import instrument
from lucid.store.redis_client import get_redis

# Cold start: refuse to start with unusable keys rather than deny every request later.
check_keys_at_cold_start()
_tokens = get_token_service()


@instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The simple response for one authorizer event (the Redis client is built on first use:
    a REDIS_URI that AWS does not hand over yet fails this call, not the function's start)."""
    return authorize(event, tokens=_tokens, redis_client=get_redis())
