"""Dependency checks behind GET /meta/health: Redis and MongoDB, each with its latency.

The drivers are imported by the checks, not with this module: the meta function's GET /health
and /meta/info, which load balancers and uptime checks poll, need neither, and importing them
costs a cold start CPU (`make bench coldstart`; pymongo most of it since the Redis client is the
layer's own); the first /meta/health pays them instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from pymongo.database import Database

    from lucid.store import resp
    from lucid.store.documents import Document


class DependencyReport(BaseModel):
    """One dependency as GET /meta/health reports it."""

    status: Literal["ok", "down"]
    latency_ms: float = Field(description="how long the check took, in milliseconds")
    error: str | None = Field(
        default=None,
        description="when down, the driver's error class (never its message); absent when ok",
    )
    code: int | None = Field(
        default=None,
        description="when MongoDB answers but refuses this function's user, its error code: "
        "18 AuthenticationFailed (a user or password it does not know), 13 Unauthorized (a "
        "role missing), 8000 AtlasError (Atlas's wrong password); absent otherwise",
        examples=[18],
    )
    code_name: str | None = Field(
        default=None,
        description="the name MongoDB gives that code (its reply's `codeName`); when Redis "
        "refuses this function's credentials, which refusal: WRONGPASS (a user or password it "
        "does not know, or a disabled user), NOAUTH (a password is needed, the URI has none), "
        "NOPASS (the URI has a password, the server none), NOPERM (an ACL rule forbids a "
        "command or key)",
        examples=["AuthenticationFailed", "WRONGPASS"],
    )


class Unusable:
    """A client its settings cannot build: REDIS_URI or MONGODB_URI unset, or a URI its driver
    refuses (pymongo's InvalidURI for an unescaped password or a bad port, the Redis client's
    ValueError for an unknown scheme). The check reports that dependency down, naming the
    error's class only (driver messages can quote the URI), instead of failing the route with a
    500."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def status(self, name: str) -> DependencyStatus:
        """Down, without a probe: nothing was sent anywhere."""
        return DependencyStatus(name, False, 0.0, type(self.error).__name__)


class DependencyStatus(NamedTuple):
    """The outcome of one dependency check."""

    name: str
    healthy: bool
    latency_ms: float
    error: str | None = None
    code: int | None = None
    code_name: str | None = None

    @property
    def refused(self) -> bool:
        """True when the store answered but refused this function's credentials."""
        return self.code_name is not None

    def report(self) -> DependencyReport:
        """What /meta/health says about this check."""
        return DependencyReport(
            status="ok" if self.healthy else "down",
            latency_ms=self.latency_ms,
            error=self.error,
            code=self.code,
            code_name=self.code_name,
        )


def _timed(
    name: str,
    probe: Callable[[], object],
    failures: tuple[type[Exception], ...],
    refused: Callable[[Exception], tuple[int | None, str] | None] = lambda _: None,
) -> DependencyStatus:
    started = time.perf_counter()
    try:
        probe()
    except failures as exc:
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        # The class name only: driver messages can carry hosts and credentials.
        down = DependencyStatus(name, False, elapsed, type(exc).__name__)
        if (refusal := refused(exc)) is not None:
            return down._replace(code=refusal[0], code_name=refusal[1])
        return down
    return DependencyStatus(name, True, round((time.perf_counter() - started) * 1000, 3))


def check_redis(client: resp.Redis | Unusable) -> DependencyStatus:
    """PING the Redis server. A server that refuses this function's credentials is named with
    its refusal (`code_name`), as the client's ERROR line names it (`lucid.store.resp`)."""
    from lucid.store.resp import RedisError, refusal_cause

    def refused(error: Exception) -> tuple[int | None, str] | None:
        cause = refusal_cause(error)
        return None if cause is None else (None, cause)

    if isinstance(client, Unusable):
        return client.status("redis")
    return _timed("redis", client.ping, (RedisError, OSError), refused)


def check_mongodb(database: Database[Document] | Unusable) -> DependencyStatus:
    """Run the `ping` command on the MongoDB server. A server that refuses this function's user
    is named with its code, as the functions' ERROR line names it (`lucid.store.documents`)."""
    from pymongo.errors import OperationFailure, PyMongoError

    from lucid.store.documents import REFUSALS, refusal

    if isinstance(database, Unusable):
        return database.status("mongodb")
    client = database.client

    def refused(error: Exception) -> tuple[int | None, str] | None:
        # pymongo signs in on the pooled connection the ping is sent on, so a wrong password
        # is the ping's OperationFailure (18; Atlas: 8000).
        if isinstance(error, OperationFailure) and (
            said := refusal(error, "/meta/health's ping", client)
        ):
            return said[0], REFUSALS[said[0]]
        return None

    return _timed("mongodb", lambda: database.command("ping"), (PyMongoError, OSError), refused)
