"""Authorizer function: the Lambda REQUEST authorizer of the HTTP API. Wiring only.

A plain handler, not FastAPI: the event is not an HTTP request but a question ("may this
Authorization header call this route?"), and this runs before every protected call.
"""

import functools
from typing import Any

from lucid.coldstart import cold_start

with cold_start():  # the collector off while importing, then the imports frozen (lucid.coldstart)
    from lucid.auth.authorizer import authorize
    from lucid.auth.keys import check_keys_at_cold_start
    from lucid.auth.revocation import RevocationList, mongodb_record
    from lucid.auth.tokens import get_token_service
    from lucid.config import get_settings
    from lucid.observability import instrument
    from lucid.store.redis_client import get_redis

    # Cold start: refuse to start with unusable keys rather than deny every request later.
    check_keys_at_cold_start()
    _tokens = get_token_service()


@functools.cache
def _revocations() -> RevocationList:
    # Built on first use, not at import: a REDIS_URI that AWS does not hand over yet fails that
    # call (and is tried again by the next), not the function's start. MongoDB (and pymongo)
    # only when Redis cannot answer: see lucid.auth.revocation.
    return RevocationList(
        get_redis(),
        mongodb_record,
        token_lifetime_seconds=60 * get_settings().TOKEN_EXPIRE_MINUTES,
    )


@instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The simple response for one authorizer event."""
    return authorize(event, tokens=_tokens, revocations=_revocations())
