"""Vocabulary of the embedded MongoDB (`lucid_edge.local.mongo_server`): requests, errors,
open cursors.

mongomock computes a whole result at once; a cursor hands it out in batches, each document
encoded once (so its size is known) and each batch capped in bytes so that a reply always fits
one wire message. Cursors idle for ten minutes are dropped, as MongoDB does.
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp
from pymongo.errors import OperationFailure

from lucid.store.documents import Document

DEFAULT_FIRST_BATCH = 101
MAX_BATCH_BYTES = 16 * 1024 * 1024
IDLE_CURSOR_SECONDS = 600.0

CODE_NAMES = {
    1: "InternalError",
    2: "BadValue",
    40: "ConflictingUpdateOperators",
    9: "FailedToParse",
    12: "UnsupportedFormat",
    13: "Unauthorized",
    14: "TypeMismatch",
    18: "AuthenticationFailed",
    20: "IllegalOperation",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    28: "PathNotViable",
    43: "CursorNotFound",
    48: "NamespaceExists",
    52: "DollarPrefixedFieldName",
    59: "CommandNotFound",
    66: "ImmutableField",
    73: "InvalidNamespace",
    85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict",
    238: "NotImplemented",
    11000: "DuplicateKey",
    15974: "Location15974",
    15975: "Location15975",
    15976: "Location15976",
}


# The Python types the server stores for BSON's numbers: int32/int64 (an int that fits in 32
# bits is encoded int32, any other int64), double, decimal128. A bool is not a number in BSON.
_NUMBERS = (int, float, Int64, Decimal128)
# mongod's names of the other types, as its error messages give them (mongodb/mongo
# src/mongo/bson/bsontypes.cpp `typeName`).
_TYPE_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (str, "string"),
    (dict, "object"),
    ((list, tuple), "array"),
    ((bytes, Binary), "binData"),
    (ObjectId, "objectId"),
    (bool, "bool"),
    (datetime.datetime, "date"),
    (type(None), "null"),
    ((re.Pattern, Regex), "regex"),
    (Timestamp, "timestamp"),
    (MinKey, "minKey"),
    (MaxKey, "maxKey"),
)


def is_number(value: Any) -> bool:
    """Whether MongoDB takes `value` as a number (an int, a long, a double, a decimal)."""
    return type(value) in _NUMBERS


def type_name(value: Any) -> str:
    """mongod's name of the BSON type `value` is stored as ("string", "int", "bool", ...)."""
    if type(value) is int:
        return "int" if -(2**31) <= value < 2**31 else "long"
    if type(value) is Int64:
        return "long"
    if type(value) is float:
        return "double"
    if type(value) is Decimal128:
        return "decimal"
    for types, name in _TYPE_NAMES:
        if isinstance(value, types):
            return name
    return type(value).__name__


def shell_value(value: Any) -> str:
    """`value` as mongod writes an element's value into a message (BSONElement::toString): a
    string in double quotes, numbers, true/false/null, ObjectId('...'); anything else in
    Python's own form (the gateway's documents name them by string ids)."""
    if type(value) is str:
        return json.dumps(value, ensure_ascii=False)
    if type(value) is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if type(value) in _NUMBERS:
        return str(value)
    if type(value) is ObjectId:
        return f"ObjectId('{value}')"
    return repr(value)


class CommandError(Exception):
    """A command failure with MongoDB's error code (its name comes from CODE_NAMES)."""

    def __init__(self, code: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.code, self.errmsg = code, errmsg

    @classmethod
    def from_failure(cls, error: OperationFailure, default_code: int = 2) -> CommandError:
        """The same failure as mongomock raised it (its code when it has one)."""
        return cls(int(error.code) if error.code else default_code, str(error))

    def reply(self) -> Document:
        """The `{ok: 0, ...}` reply document."""
        name = CODE_NAMES.get(self.code, "UnknownError")
        return {"ok": 0.0, "errmsg": self.errmsg, "code": self.code, "codeName": name}


@dataclass(slots=True)
class Request:
    """One command: its name (the first key), document, target database and connection.

    Not frozen: a frozen dataclass sets each field through object.__setattr__, which made
    building one cost about a third of dispatching a command."""

    name: str
    command: Document
    database: str
    connection_id: int

    @property
    def target(self) -> Any:
        """The command's value: the collection name for collection commands."""
        return self.command[self.name]

    @property
    def namespace(self) -> str:
        """`database.collection`."""
        return f"{self.database}.{self.target}"

    def sort(self) -> list[tuple[str, Any]] | None:
        """The `sort` document as the (key, 1 or -1) list that mongomock takes (`sort_keys`)."""
        sort = self.command.get("sort")
        return sort_keys(sort) if sort else None


def sort_keys(sort: Document) -> list[tuple[str, Any]]:
    """A sort document (find's `sort`, a `$sort` stage) as (key, 1 or -1) pairs, refused as
    MongoDB refuses it (mongomock sorts by any value): a direction must be a number whose
    integer part is 1 or -1 (MongoDB's src/mongo/db/query/sort_pattern.cpp, SortPattern:
    15974 for a non-number, 15975 for any other number; `$meta` sorts are not served)."""
    keys: list[tuple[str, Any]] = []
    for key, direction in sort.items():
        if isinstance(direction, dict):
            raise CommandError(238, "$meta sorts are not supported by the embedded MongoDB")
        if isinstance(direction, Decimal128):
            direction = float(direction.to_decimal())
        if isinstance(direction, bool) or not isinstance(direction, (int, float)):
            raise CommandError(15974, f"Illegal key in $sort specification: {key}: {direction!r}")
        if not math.isfinite(direction) or int(direction) not in (1, -1):
            raise CommandError(
                15975, "$sort key ordering must be 1 (for ascending) or -1 (for descending)"
            )
        keys.append((key, 1 if direction > 0 else -1))
    return keys


@dataclass
class Cursor:
    """The rest of one result, handed out batch by batch."""

    namespace: str
    documents: list[Document]
    position: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def exhausted(self) -> bool:
        """Whether every document has been handed out."""
        return self.position >= len(self.documents)

    def take(self, count: int | None) -> list[RawBSONDocument]:
        """Up to `count` next documents (None: no count limit), at most MAX_BATCH_BYTES."""
        batch, self.position = batch_of(self.documents, self.position, count)
        self.last_used = time.monotonic()
        return batch


def batch_of(
    documents: list[Document], start: int, count: int | None
) -> tuple[list[RawBSONDocument], int]:
    """(the batch, the position after it): up to `count` documents from `start` (None: no
    count limit), each encoded once, at most MAX_BATCH_BYTES together (one at least)."""
    batch: list[RawBSONDocument] = []
    size = 0
    position = start
    while position < len(documents) and (count is None or len(batch) < count):
        document = RawBSONDocument(bson.encode(documents[position]))
        if batch and size + len(document.raw) > MAX_BATCH_BYTES:
            break
        batch.append(document)
        size += len(document.raw)
        position += 1
    return batch, position


@dataclass
class Cursors:
    """The server's open cursors by id (any connection may continue any cursor)."""

    open_cursors: dict[int, Cursor] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def open(
        self, namespace: str, documents: list[Document], batch_size: int | None, single_batch: bool
    ) -> tuple[int, list[RawBSONDocument]]:
        """(cursor id, first batch); id 0 when the first batch is all there will be."""
        if single_batch:  # no cursor to keep (every find_one)
            return 0, batch_of(
                documents, 0, DEFAULT_FIRST_BATCH if batch_size is None else int(batch_size)
            )[0]
        self._drop_idle()
        cursor = Cursor(namespace, documents)
        batch = cursor.take(DEFAULT_FIRST_BATCH if batch_size is None else int(batch_size))
        if single_batch or cursor.exhausted:
            return 0, batch
        cursor_id = next(self._ids)
        self.open_cursors[cursor_id] = cursor
        return cursor_id, batch

    def get(self, cursor_id: int) -> Cursor | None:
        """The open cursor with this id, if any."""
        return self.open_cursors.get(cursor_id)

    def close(self, cursor_id: int) -> bool:
        """Forget a cursor; whether it was open."""
        return self.open_cursors.pop(cursor_id, None) is not None

    def _drop_idle(self) -> None:
        deadline = time.monotonic() - IDLE_CURSOR_SECONDS
        for cursor_id in [key for key, c in self.open_cursors.items() if c.last_used < deadline]:
            del self.open_cursors[cursor_id]
