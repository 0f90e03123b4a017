"""Revoked sign-ins: a fast path in Redis over the durable record in MongoDB.

Every access token names its sign-in (`sid`: the refresh-token family it was issued with).
Logout and refresh-token reuse revoke one sign-in; a role change or an account closure revokes
every sign-in of the user. The record is MongoDB's `tokens` collection (`revoked_at` on the
family's documents, see `lucid.auth.refresh`); Redis keeps a copy in one hash, so that the copy
is kept or lost as a whole (an eviction or a restart cannot drop one entry and keep the rest):

    lucid:<stage>:revoked-sign-ins             a hash without TTL (lucid.store.keys)
        <sid>                    epoch seconds until which that sign-in's access tokens are refused
        ~synced-until@<run_id>   epoch seconds until which the copy counts as complete, in the
                                 redis-server process `run_id` (INFO server) that loaded it

A check is one HMGET of the mark of the process answering it and the sid (the connection knows
that process's run_id: `lucid.store.kept_connection.server_run_id`, asked once per socket):

    the sid is there and not past ......... revoked
    the mark is not past .................. not revoked
    the mark is past (a reload due) ....... one caller (a Redis lock) reloads the copy from
                                            MongoDB; the others answer from the copy
    the mark is missing ................... the copy was lost (a restart without persistence, a
                                            flush, an eviction) or is not this process's: one
                                            caller reloads it, the others ask MongoDB directly
                                            meanwhile
    Redis does not answer ................. ask MongoDB directly
    MongoDB does not answer either ........ ServiceUnavailableError, never "not revoked"

Redis draws a new run_id whenever a server process starts, and a replica has its own. A copy
that comes back in another process (restored from an RDB snapshot or an AOF that missed the last
writes, served by a promoted replica that lagged) carries the mark of the process that loaded
it, which no check asks for: it is reloaded before it may say "not revoked", by every process,
including one that never spoke to the old server. Its entries still say "revoked" (a
revocation is never undone).

A revocation is written to MongoDB first, then into the copy. When that second write fails the
revocation still holds wherever MongoDB is asked, and the copy has it at the next reload, at
most SYNC_SECONDS later. Entries are kept for the horizon: an access token's lifetime plus the
clock leeway decoding allows, after which every token of the sign-in has expired anyway.

MongoDB is reached only through the `RevocationRecord` a caller supplies, built on first need:
the authorizer, which otherwise never touches MongoDB, imports pymongo on the slow path only.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from lucid.config import MAX_JWT_LEEWAY_SECONDS
from lucid.errors import ServiceUnavailableError
from lucid.observability import count
from lucid.store import resp
from lucid.store.kept_connection import kept_connections
from lucid.store.keys import revocations_key

logger = logging.getLogger("lucid.auth.revocation")

# The mark's field is this and the run_id of the process that loaded the copy; "~" is in no sid
# (32 hex characters), so it never collides.
SYNCED_PREFIX = "~synced-until@"
SYNC_SECONDS = 30
RELOAD_LOCK_MS = 10_000
# The most clock skew past `exp` any check may tolerate (JWT_LEEWAY_SECONDS's bound): entries
# outlive every token of their sign-in whatever leeway is configured.
LEEWAY_SECONDS = MAX_JWT_LEEWAY_SECONDS

# Merges entries into the hash, each keeping the later of its two deadlines. With a non-zero
# ARGV[2] it is a reload: entries past ARGV[1] (now) are dropped (marks of other processes among
# them) and the copy vouched for until ARGV[2] under the mark of the process running the script.
# One script, so a revocation written meanwhile is never overwritten nor dropped. The run_id is
# the executing server's own: a replica is sent the script's writes, not the script (Redis >= 5
# replicates scripts by their effects), so it never re-runs INFO and marks the copy as its own.
MERGE_SCRIPT = """
local key, now, synced, synced_prefix = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 4, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', key, ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
if synced > 0 then
  local info = redis.pcall('INFO', 'server')
  local run_id = type(info) == 'string' and string.match(info, 'run_id:(%x+)') or ''
  local mark = synced_prefix .. run_id
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local deadline = tonumber(fields[i + 1])
    if fields[i] ~= mark and deadline and deadline <= now then
      redis.call('HDEL', key, fields[i])
    end
  end
  redis.call('HSET', key, mark, ARGV[2])
end
return 1
"""
# Deletes the reload lock only while it is still the caller's: a reload that outlived the lock
# (RELOAD_LOCK_MS) must not free the lock of the caller that took it over. The unlock script of
# Redis's SET page ("Patterns": "a script that only removes the key if the value matches").
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def synced_field(run_id: str) -> str:
    """The mark of a copy loaded into the redis-server process `run_id`."""
    return SYNCED_PREFIX + run_id


class RevocationRecord(Protocol):
    """The durable record of revoked sign-ins (MongoDB); ServiceUnavailableError when down."""

    def is_revoked(self, sid: str) -> bool:
        """True when the sign-in `sid` was ever revoked."""
        ...

    def revoked_since(self, since: datetime) -> dict[str, datetime]:
        """Every sign-in revoked at or after `since`, with its latest revocation time."""
        ...


class RevocationList:
    """Checks and remembers revoked sign-ins (see the module docstring for the protocol)."""

    def __init__(
        self,
        client: resp.Redis,
        record: Callable[[], RevocationRecord],
        *,
        token_lifetime_seconds: int,
        clock: Callable[[], float] = time.time,
        stage: str | None = None,
    ) -> None:
        """`stage`: whose copy this is (the process's STAGE when None; lucid.store.keys)."""
        self.key = revocations_key(stage)
        self.reload_lock = self.key + ":reload"
        self._redis = client
        # The check runs at every signed-in call: on the thread's kept connection, not
        # through the client's pool (lucid.store.kept_connection).
        self._kept = kept_connections(client)
        self._record_factory = record
        self._record: RevocationRecord | None = None
        self.horizon_seconds = token_lifetime_seconds + LEEWAY_SECONDS
        self._clock = clock

    def is_revoked(self, sid: str) -> bool:
        """True when the sign-in `sid` is revoked; ServiceUnavailableError when nobody knows."""
        now = self._clock()
        key = self.key
        try:
            synced_until, revoked_until = self._kept.execute_for_server(
                lambda run_id: ("HMGET", key, SYNCED_PREFIX + run_id, sid)
            )
        except resp.RedisError:
            # Counted, not logged: this happens at every call while Redis is down, and the rate
            # limiter and /meta/health already say so once.
            count("RevocationCheckWithoutRedis")
            return self.record().is_revoked(sid)
        if revoked_until is not None and float(revoked_until) > now:
            return True
        if synced_until is not None and float(synced_until) > now:
            return False
        return self._reload_then_check(sid, lost=synced_until is None)

    def remember(self, revoked: Mapping[str, datetime]) -> None:
        """Copy sign-ins just revoked in the record into Redis (a failure is logged only)."""
        if not revoked:
            return
        try:
            self._merge(revoked, synced_until=0)
        except resp.RedisError as error:
            # The record holds it; the copy gets it at its next reload (<= SYNC_SECONDS).
            logger.warning("revocation not copied to Redis (%s)", type(error).__name__)
            count("RevocationNotCopied")

    def record(self) -> RevocationRecord:
        """The durable record, built on first use."""
        if self._record is None:
            self._record = self._record_factory()
        return self._record

    def _reload_then_check(self, sid: str, *, lost: bool) -> bool:
        owner = secrets.token_hex(8)
        try:
            leader = bool(self._redis.set(self.reload_lock, owner, nx=True, px=RELOAD_LOCK_MS))
        except resp.RedisError:
            return self.record().is_revoked(sid)
        if not leader:
            # Someone else reloads: a lost copy cannot answer "not revoked", a due one can.
            return self.record().is_revoked(sid) if lost else False
        try:
            revoked = self._reload()
        except ServiceUnavailableError:
            # The lock is kept until it expires (RELOAD_LOCK_MS): while MongoDB is down, one
            # caller per lock period waits out its timeout, not every caller.
            if lost:
                raise
            logger.warning("revocations not reloaded: MongoDB is unavailable")
            return False
        except resp.RedisError:
            self._release_lock(owner)
            return self.record().is_revoked(sid)
        self._release_lock(owner)
        return sid in revoked

    def _reload(self) -> dict[str, datetime]:
        now = self._clock()
        since = datetime.fromtimestamp(now - self.horizon_seconds, UTC)
        revoked = self.record().revoked_since(since)
        self._merge(revoked, synced_until=now + SYNC_SECONDS)
        if revoked or self._clock() - now > 1:
            logger.info("revocations reloaded from MongoDB", extra={"revoked": len(revoked)})
        return revoked

    def _merge(self, revoked: Mapping[str, datetime], *, synced_until: float) -> None:
        args: list[str | float] = [self._clock(), synced_until, SYNCED_PREFIX]
        for sid, revoked_at in revoked.items():
            args += (sid, revoked_at.timestamp() + self.horizon_seconds)
        self._redis.register_script(MERGE_SCRIPT)(keys=[self.key], args=args)

    def _release_lock(self, owner: str) -> None:
        with contextlib.suppress(resp.RedisError):  # it expires on its own otherwise
            self._redis.register_script(RELEASE_SCRIPT)(keys=[self.reload_lock], args=[owner])


def mongodb_record() -> RevocationRecord:
    """The record in the process's MongoDB database (`lucid.auth.revocation_record`)."""
    # Imported here, not at the top: pymongo adds ~120 ms to the authorizer's cold start, and
    # the authorizer needs MongoDB only when Redis cannot answer on its own.
    from lucid.auth.revocation_record import MongoRevocationRecord
    from lucid.store.mongo import get_database

    return MongoRevocationRecord(get_database())
