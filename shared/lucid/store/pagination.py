"""Keyset (cursor) pagination over `created_at`, ties broken by `_id`.

A page continues strictly after the last document of the previous page in (created_at, _id)
order, so documents inserted while a client walks the list never shift what it sees: every
document that existed when the walk began appears exactly once (no duplicates, no gaps), unlike
skip/limit. The cursor is opaque to clients (base64url JSON) and bound to the query it came
from: reused with other filters or another sort it is refused (422), and every field is
re-validated when decoded, so a forged cursor can only point elsewhere in the caller's own
result set.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, Self

from pymongo.collection import Collection

from lucid.errors import ValidationFailedError
from lucid.store.documents import Document, is_valid_id

MAX_LIMIT = 100
DEFAULT_LIMIT = 50
MAX_CURSOR_LENGTH = 512
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The last millisecond a datetime (and so a BSON date we compare with) can name: year 9999.
MAX_CREATED_AT_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) // timedelta(
    milliseconds=1
)
SortOrder = Literal["created_at", "-created_at"]


class Position(NamedTuple):
    """Where a page ended: the last document's creation time (ms since epoch) and id."""

    created_at_ms: int
    id: str

    @classmethod
    def of(cls, document: Document) -> Self:
        """The position of `document`."""
        created: datetime = document["created_at"]
        return cls(round(created.timestamp() * 1000), str(document["_id"]))

    @property
    def created_at(self) -> datetime:
        """The creation time as an aware UTC datetime."""
        return EPOCH + timedelta(milliseconds=self.created_at_ms)


class Page(NamedTuple):
    """One page of documents and the cursor of the next one (None on the last page)."""

    items: list[Document]
    next_cursor: str | None


def query_fingerprint(filters: Mapping[str, object], sort: SortOrder) -> str:
    """A short digest of the filters and sort a cursor belongs to."""
    canonical = json.dumps({"f": dict(filters), "s": sort}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(position: Position, fingerprint: str) -> str:
    """The opaque cursor continuing after `position` for the query `fingerprint`."""
    raw = json.dumps({"t": position.created_at_ms, "i": position.id, "q": fingerprint})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> Position:
    """The position in `cursor`; 422 when it is malformed or belongs to another query."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise _bad_cursor("cursor is malformed") from None
    if not isinstance(data, dict):
        raise _bad_cursor("cursor is malformed")
    created, ident, query = data.get("t"), data.get("i"), data.get("q")
    if type(created) is not int or not 0 <= created <= MAX_CREATED_AT_MS or not is_valid_id(ident):
        raise _bad_cursor("cursor is malformed")
    if query != fingerprint:
        raise _bad_cursor("cursor belongs to a different query (filters or sort changed)")
    return Position(created, str(ident))


def _bad_cursor(detail: str) -> ValidationFailedError:
    return ValidationFailedError(
        detail,
        extensions={"errors": [{"loc": ["query", "cursor"], "msg": detail, "type": "cursor"}]},
    )


def fetch_page(
    collection: Collection[Document],
    filters: Mapping[str, object],
    *,
    limit: int,
    cursor: str | None,
    sort: SortOrder,
) -> Page:
    """One page of `collection` matching `filters` (already typed and safe) in `sort` order."""
    fingerprint = query_fingerprint(filters, sort)
    descending = sort.startswith("-")
    query: dict[str, Any] = dict(filters)
    if cursor is not None:
        after = decode_cursor(cursor, fingerprint)
        beyond = "$lt" if descending else "$gt"
        query["$or"] = [
            {"created_at": {beyond: after.created_at}},
            {"created_at": after.created_at, "_id": {beyond: after.id}},
        ]
    direction = -1 if descending else 1
    found = list(
        collection.find(
            query, sort=[("created_at", direction), ("_id", direction)], limit=limit + 1
        )
    )
    items = found[:limit]
    more = len(found) > limit
    next_cursor = encode_cursor(Position.of(items[-1]), fingerprint) if more else None
    return Page(items=items, next_cursor=next_cursor)
