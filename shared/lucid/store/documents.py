"""What every repository of ours shares: ids, timestamps, safe JSON objects, driver errors.

Ids are 32-char lowercase hex uuid4 strings, checked by `is_valid_id` before they reach a query,
so a malformed id is a plain 404 and never a driver error. Timestamps are UTC with millisecond
precision, the precision BSON stores, so what we return is exactly what a cursor later compares.

Client-supplied JSON objects (session metadata, user preferences) pass `check_json_object`, the
one place where a free-form value is checked before MongoDB stores it. Anything BSON cannot hold,
or that MongoDB would read as more than data, is a ValueError (pydantic's 422 naming the field)
instead of a driver error (a 500) half way through a write:

    keys        strings only; never starting with `$` or holding `.` (operators, paths) or NUL
                (BSON keys are C strings)
    integers    within BSON's int64 (-2**63 .. 2**63-1)
    floats      finite (JSON has no NaN or Infinity, though Python's parser accepts them)
    strings     valid Unicode: a lone surrogate (`"\\ud800"` in JSON) cannot be UTF-8 encoded
    nesting     at most MAX_JSON_DEPTH levels; at most `max_bytes` as JSON
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, overload

from bson import tz_util
from pydantic import Field
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, WTimeoutError

from lucid.errors import ServiceUnavailableError

logger = logging.getLogger("lucid.store")

_ID = re.compile(r"^[0-9a-f]{32}$")
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_JSON_DEPTH = 16
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Document = dict[str, Any]
# A moment as `iso()` writes it: what every response carries for a stored datetime.
Timestamp = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        description="RFC 3339 date-time in UTC (`Z`)",
        examples=["2026-11-26T04:10:22.123Z"],
    ),
]


def new_id() -> str:
    """A fresh document id (uuid4 as 32 lowercase hex characters)."""
    # What uuid.uuid4().hex gives: UUID(bytes=os.urandom(16), version=4) sets the variant's two
    # bits (10, the top of byte 8) and the version's nibble (4, the top of byte 6) on the random
    # 128 bits and writes them as '%032x' (CPython 3.11 Lib/uuid.py: uuid4, UUID.__init__ 217-221,
    # UUID.hex), ~15 K instructions for the class's own checks against ~4 K here (valgrind).
    data = bytearray(os.urandom(16))
    data[6] = data[6] & 0x0F | 0x40
    data[8] = data[8] & 0x3F | 0x80
    return data.hex()


def is_valid_id(value: object) -> bool:
    """True when `value` has the shape of one of our document ids."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def utcnow() -> datetime:
    """Now in UTC, truncated to the millisecond (what MongoDB keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: datetime | None) -> str | None: ...
def iso(moment: datetime | None) -> str | None:
    """`moment` as an RFC 3339 string in UTC with milliseconds, or None."""
    if moment is None:
        return None
    # What the store gives back is UTC already (pymongo's tz_aware codec: bson.tz_util.utc, a
    # Python tzinfo): its fields are written from two tables, ~8.6 K instructions a timestamp
    # against ~20.4 K for astimezone + isoformat + replace (valgrind, CPython 3.11), the same
    # characters; isoformat's "milliseconds" truncates (CPython Modules/_datetimemodule.c,
    # datetime_isoformat: `us / 1000`), as `// 1000` does. A naive moment (astimezone takes it
    # as local time) or another offset takes the conversion. The codec's own UTC and datetime's
    # are known by identity: utcoffset() calls the codec's Python tzinfo (bson/tz_util.py
    # FixedOffset.utcoffset), ~2.5 K of the ~8.2 K instructions a timestamp cost (valgrind).
    tzinfo = moment.tzinfo
    if tzinfo is not _CODEC_UTC and tzinfo is not UTC:
        offset = moment.utcoffset()
        if offset is None or offset:
            return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    year = moment.year
    return (
        f"{_TWO[year // 100]}{_TWO[year % 100]}-{_TWO[moment.month]}-{_TWO[moment.day]}"
        f"T{_TWO[moment.hour]}:{_TWO[moment.minute]}:{_TWO[moment.second]}"
        f".{_THREE[moment.microsecond // 1000]}Z"
    )


_CODEC_UTC = tz_util.utc  # the tzinfo of what a tz_aware client decodes
# "00".."99" and "000".."999", by value: iso()'s digits without a format spec parsed per field.
_TWO = [tens + units for tens in "0123456789" for units in "0123456789"]
_THREE = [hundreds + two for hundreds in "0123456789" for two in _TWO]


def check_json_object(value: Mapping[str, Any], *, max_bytes: int) -> dict[str, Any]:
    """`value` if MongoDB can store it as it is (see the module docstring), within `max_bytes`.

    Raises ValueError (pydantic turns it into a 422 naming the field) otherwise.
    """
    _check_storable(value, depth=1)
    encoded = json.dumps(value, separators=(",", ":"))
    if len(encoded.encode()) > max_bytes:
        raise ValueError(f"must be at most {max_bytes} bytes as JSON")
    return dict(value)


def _check_storable(value: object, depth: int) -> None:
    # `depth` counts objects and arrays, the outermost being 1: a scalar adds no level (it
    # did, so 16 levels of objects holding a value were refused as deeper than 16)
    if isinstance(value, Mapping | list) and depth > MAX_JSON_DEPTH:
        raise ValueError(f"must not nest deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_key(key)
            _check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item, depth + 1)
    elif isinstance(value, str):
        _check_text(value, "strings")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("integers must fit in 64 bits (-2**63 to 2**63-1)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must not contain NaN or Infinity")
    else:
        raise ValueError(f"must hold JSON values only, not {type(value).__name__}")


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise ValueError("keys must be strings")
    if key.startswith("$") or "." in key or "\x00" in key:
        raise ValueError("keys must not start with '$' or contain '.' or NUL")
    _check_text(key, "keys")


def _check_text(text: str, what: str) -> None:
    if _SURROGATE.search(text):
        raise ValueError(f"{what} must be valid Unicode (no lone surrogates)")


# A server that answers but will not serve this function's user: a password (or user) it does not
# know, 18 AuthenticationFailed (mongodb/mongo src/mongo/db/auth/sasl_commands.cpp, doSaslStep:
# every failed step answers only "Authentication failed."; pymongo raises it at the first
# operation, when a pooled connection signs in), or a user without the privilege the command
# needs, 13 Unauthorized ("not authorized on <db> to execute command ..."; and "Command <name>
# requires authentication" from a server with authorization on to a URI naming no user:
# src/mongo/db/commands.cpp, checkAuthorizationImplPreParse). MongoDB Atlas's proxy answers a
# wrong password with its own 8000 AtlasError "bad auth : Authentication failed." (pymongo
# tracebacks in field reports, e.g. AbirHasan2005/PyroFilesStoreBot#48). All are a configuration
# fault of the deployment, like an unreachable server: no request can be served until the URI or
# the user's roles change.
REFUSALS = {18: "AuthenticationFailed", 13: "Unauthorized", 8000: "AtlasError"}
# What each refusal is of, and what to check (never the URI itself: it holds the password).
_CREDENTIALS = (
    "the credentials",
    "check the user name and password in MONGODB_URI (percent-escaped) and the database the "
    "user was created in (authSource, else the URI's database)",
)
_OPERATION = (
    "the operation",
    "check that MONGODB_URI names a user, and that the user's roles allow the command "
    "(readWrite on the gateway's database)",
)
_REFUSED = {18: _CREDENTIALS, 8000: _CREDENTIALS, 13: _OPERATION}


class DatabaseRefusedError(ServiceUnavailableError):
    """503: MongoDB answers, but refuses this function's credentials or their privileges."""

    def __init__(self, what: str, code: int, reason: str) -> None:
        super().__init__(f"the {what} store refused {_REFUSED[code][0]}")
        self.code, self.reason = code, reason


class _Logged:
    """The refusals already logged, per client: its pooled connections all sign in with the
    same credentials, so each refusal would otherwise be a line per request. Keyed by the
    client's identity, not by the client (pymongo's MongoClient compares equal to any other of
    the same servers: a second client of the same URI must log its own line)."""

    def __init__(self) -> None:
        self._by_client: dict[int, set[tuple[int, str]]] = {}

    def first(self, client: MongoClient[Any], cause: tuple[int, str]) -> bool:
        """True the first time `client` meets `cause`."""
        key = id(client)
        logged = self._by_client.get(key)
        if logged is None:
            logged = self._by_client[key] = set()
            # Forgotten with the client: its id may name another client once it is gone.
            weakref.finalize(client, self._by_client.pop, key, None)
        if cause in logged:
            return False
        # A set's add is atomic under the GIL: two threads at once may both log, never none.
        logged.add(cause)
        return True


_logged = _Logged()


def refusal(
    error: OperationFailure, request: str, client: MongoClient[Any]
) -> tuple[int, str] | None:
    """The code and the server's words when `error` is MongoDB refusing `client`'s user
    (`REFUSALS`), logged as one ERROR line per client and cause saying what was refused, at
    which `request` first, and what to check; None (nothing logged) for any other failure."""
    code = error.code
    if code is None or code not in REFUSALS:
        return None
    # The server's own words, which never hold the credentials; a 13 goes on to quote the
    # command it refused (filter values included), so only its first clause is kept.
    said = str((error.details or {}).get("errmsg") or REFUSALS[code])
    reason = said.split(" to execute command", 1)[0]
    if _logged.first(client, (code, reason)):
        refused, check = _REFUSED[code]
        logger.error(
            "MongoDB refused %s (%s: code %d %s), first at %s: %s",
            refused,
            reason,
            code,
            REFUSALS[code],
            request,
            check,
            extra={"store": "mongodb", "code": code},
        )
    return code, reason


@contextmanager
def database_errors(what: str, on: Collection[Any] | Database[Any]) -> Iterator[None]:
    """Translate a MongoDB outage inside the block, whose operations go through `on`, into
    `ServiceUnavailableError` (503).

    Only "the database is unreachable or too slow" and "the database refuses this function's
    user" (`REFUSALS`, logged at ERROR once per client and cause) are translated; anything else
    is a bug and stays a 500.
    """
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout, WTimeoutError) as error:
        raise ServiceUnavailableError(f"the {what} store is unavailable") from error
    except OperationFailure as error:
        client = on.client if isinstance(on, Database) else on.database.client
        refused = refusal(error, f"the {what} store's request", client)
        if refused is None:
            raise
        # Not chained: a traceback of it (the authorizer's, escaping to the runtime) would
        # print pymongo's whole reply.
        raise DatabaseRefusedError(what, *refused) from None
