"""The first *real* request of a cold start, with Redis and MongoDB reachable.

The cold-start table (bench/coldstart.py) times requests that need no network, so that the
figure is the function's own. Whatever a function leaves out of its cold start, its first real
request pays: this times that request, in the same fresh `python -S -I -B` on the read-only
artifact, beside the hello-world function's first call and in the same rounds, so that nothing
is hidden by deferring an import:

- the authorizer with a valid token (its sign-in looked up in Redis);
- the meta function's GET /meta/health (pings Redis and MongoDB: it loads both drivers then);
- the users function's GET /users/me for a signed-in caller stored in MongoDB, with the rate
  limiter on (Redis), as a deployed stage runs it.

MongoDB is the local edge's in-memory store behind the real wire protocol (there is no MongoDB
server on these machines); Redis is the bench's real redis-server.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient

from bench.probes import LAMBDA_ENV, Probe, event_for
from lucid.auth.keys import KeyRing
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.identity import Role
from lucid_edge.local import start_mongo_server

# (function, route of the probe, status the first real request must get)
REAL_REQUESTS = (
    ("AuthorizerFunction", Probe("GET", "/users/me", 200, authorizer=True)),
    ("MetaFunction", Probe("GET", "/meta/health", 200)),
    ("UsersFunction", Probe("GET", "/users/me", 200)),
)


def signed_in(user_id: str, address: str) -> tuple[str, dict[str, Any]]:
    """A valid access token for the probes' JWT key, and the authorizer context it gives."""
    settings = Settings(STAGE="dev", JWT_SECRET_KEY=LAMBDA_ENV["JWT_SECRET_KEY"])
    issued = TokenService(settings, KeyRing(settings)).issue(
        user_id, address, Role.USER, secrets.token_hex(12)
    )
    claims = issued.claims
    context = {
        "user_id": claims.sub,
        "address": claims.addr,
        "role": str(claims.role),
        "tier": claims.tier,
        "jti": claims.jti,
        "sid": claims.sid,
        "exp": claims.exp,
    }
    return issued.token, context


def real_event(probe: Probe, token: str, context: dict[str, Any]) -> dict[str, Any]:
    """`probe`'s event as a signed-in client sends it (the authorizer's: its bearer token)."""
    event = event_for(probe)
    if probe.authorizer:
        event["identitySource"] = [f"Bearer {token}"]
        event["headers"]["authorization"] = f"Bearer {token}"
    elif probe.path == "/users/me":
        event["requestContext"]["authorizer"] = {"lambda": context}
    return event


@contextmanager
def stores(redis_uri: str) -> Iterator[tuple[dict[str, str], dict[str, Any], str]]:
    """The environment that reaches Redis and an in-memory MongoDB holding one user, that
    user's authorizer context, and a valid token of theirs."""
    address = "TUZK8rKUvws7tZjfKRcVZXtF4DbpKsAjqr"
    user_id = secrets.token_hex(16)  # the shape of our user ids (not an ObjectId)
    token, context = signed_in(user_id, address)
    with start_mongo_server() as mongo:
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri, tz_aware=True)
        now = datetime.now(UTC)
        client["lucid"]["users"].insert_one(
            {"_id": user_id, "address": address, "role": "user", "display_name": "Bench",
             "email": None, "preferences": {}, "created_at": now, "updated_at": now}
        )  # fmt: skip
        client.close()
        env = {"REDIS_URI": redis_uri, "MONGODB_URI": mongo.uri, "RATE_LIMIT_ENABLED": "true"}
        yield env, context, token


def print_table(
    figures: dict[tuple[str, str], dict[str, Any]], variants: Sequence[str], hello: str
) -> None:
    """CPU of each first real request, and its ratio to hello world's first call."""
    print("\nfirst real request at cold start (Redis and MongoDB reachable), CPU time:")
    for function, probe in REAL_REQUESTS:
        line = f"{function:20s} {probe.method} {probe.path:14s}"
        for variant in variants:
            own = figures.get((variant, function))
            if own is None:
                continue
            ratio = own["cpu_ms"] / figures[variant, hello]["cpu_ms"]
            line += f" | {variant}: {own['cpu_ms']:4.0f} ms {ratio:5.2f}x hello"
        print(line)
    print(json.dumps({"measured_at": time.strftime("%H:%M:%SZ", time.gmtime())}))
