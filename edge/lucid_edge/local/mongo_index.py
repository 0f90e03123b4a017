"""Indexes for the embedded MongoDB: mongomock that answers lookups without scanning.

mongomock evaluates every query against every document of the collection (`find_one` by `_id`:
~95 µs over 100 documents, ~9 ms over 10,000) and, on a collection with a TTL index, also walks
every document on every access to expire the old ones. Here the same engine keeps:

    by `_id`          the store's own dict (mongomock keys documents by `_id`)
    by an index       a hash index on the first field of every index the collection declares
                      (`createIndexes`): value -> documents, like the leading key of a B-tree
    TTL expiry        a heap of expiry times, so expiring costs O(log n) per expired document

A query uses them when it pins a field to values: `{field: v}`, `{field: {$eq: v}}`,
`{field: {$in: [...]}}`, alone or inside a top-level `$and`. The lookup only narrows the
candidates; each candidate is still matched against the whole filter by mongomock, so a
candidate too many is harmless and results are exactly mongomock's. What cannot be looked up
(no index on the field, ranges, regexes, sub-documents, dotted paths, datetimes, NaN) is scanned
as before. Documents whose indexed value is an array or a sub-document are kept apart and are a
candidate of every lookup on that field, so multikey matches are never missed.

mongomock changes a stored document in place when it updates it. Every such change is followed by
its unique-index check (`Collection._ensure_uniques`), which is where the document is indexed
again; inserts, rollbacks and deletes go through the store's item methods.
"""

from __future__ import annotations

import copy
import datetime
import heapq
import itertools
import math
import re
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

import mongomock
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from mongomock import helpers
from mongomock.collection import Collection
from mongomock.filtering import filter_applies
from mongomock.helpers import hashdict, utcnow
from mongomock.store import CollectionStore, DatabaseStore, ServerStore
from pymongo.errors import DuplicateKeyError, OperationFailure

from lucid_edge.local.mongo_update import refuse_or_apply

Key = Hashable
_UNHASHABLE = (dict, list, tuple, set, re.Pattern, Regex, datetime.datetime)


def _lookup_values(condition: Any) -> list[Any] | None:
    """The values a filter condition pins its field to, or None when it pins none."""
    if isinstance(condition, dict):
        if "$eq" in condition:
            values = [condition["$eq"]]
        elif "$in" in condition and isinstance(condition["$in"], list):
            values = condition["$in"]
        else:
            return None  # a range, a negation, or a whole sub-document
    else:
        values = [condition]
    for value in values:
        if isinstance(value, _UNHASHABLE) or (isinstance(value, float) and math.isnan(value)):
            return None
        try:
            hash(value)
        except TypeError:
            return None
    return values


def _ttl_seconds(index: dict[str, Any]) -> tuple[str, int] | None:
    """(field, seconds) of a TTL index mongomock honours (one key, whole seconds), else None."""
    try:
        seconds = int(index["expireAfterSeconds"])
    except (KeyError, TypeError, ValueError):
        return None
    keys = list(index["key"])
    return (keys[0][0], seconds) if len(keys) == 1 else None


def _expiry(value: Any, seconds: int) -> datetime.datetime | None:
    """When a document whose TTL field holds `value` expires (the earliest date of a list)."""
    dates = value if isinstance(value, list) else [value]
    moments = [date for date in dates if isinstance(date, datetime.datetime)]
    if not moments:
        return None  # not a date: MongoDB never expires it
    try:
        return min(moments) + datetime.timedelta(seconds=seconds)
    except (OverflowError, TypeError):
        return None


class HashIndex:
    """value -> keys of the documents holding it in one top-level field."""

    def __init__(self, field: str) -> None:
        self.field = field
        self._buckets: dict[Any, dict[Key, None]] = {}
        self._apart: dict[Key, None] = {}  # arrays, sub-documents, unhashable values
        self._entries: dict[Key, Any] = {}  # key -> the bucket value it is filed under
        self._sentinel = object()

    def add(self, key: Key, document: dict[str, Any]) -> None:
        """File (or re-file) the document stored under `key`."""
        self.remove(key)
        value = document.get(self.field)  # a missing field is found by {field: null}, as in MongoDB
        if isinstance(value, _UNHASHABLE) or not _hashable(value):
            self._apart[key] = None
            self._entries[key] = self._sentinel
            return
        self._buckets.setdefault(value, {})[key] = None
        self._entries[key] = value

    def remove(self, key: Key) -> None:
        """Forget the document stored under `key`, if filed."""
        value = self._entries.pop(key, self._sentinel)
        if value is self._sentinel:
            self._apart.pop(key, None)
            return
        bucket = self._buckets.get(value)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self._buckets[value]

    def count(self, values: Iterable[Any]) -> int:
        """How many keys `lookup(values)` yields at most (without building the list)."""
        return sum(len(self._buckets.get(value, ())) for value in values) + len(self._apart)

    def lookup(self, values: Iterable[Any]) -> list[Key]:
        """Keys of the documents that may hold one of `values`."""
        found: dict[Key, None] = {}
        for value in values:
            found.update(self._buckets.get(value, {}))
        found.update(self._apart)
        return list(found)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class IndexedCollectionStore(CollectionStore):
    """mongomock's store of one collection, plus hash indexes and a TTL heap."""

    def __init__(self, name: str) -> None:
        self._hash: dict[str, HashIndex] = {}
        self._expiries: list[tuple[datetime.datetime, int, Key]] = []
        self._order = itertools.count()
        self._arrival: dict[Key, int] = {}  # insertion rank: candidates come in natural order
        self._index_specs: dict[str, dict[str, Any]] = {}
        super().__init__(name)

    # mongomock assigns `indexes` directly (Collection.drop_indexes): rebuild on every assignment
    @property
    def indexes(self) -> dict[str, dict[str, Any]]:
        return self._index_specs

    @indexes.setter
    def indexes(self, value: dict[str, dict[str, Any]]) -> None:
        self._index_specs = value
        self._ttl_indexes = {n: i for n, i in value.items() if _ttl_seconds(i) is not None}
        self._rebuild()

    def create_index(self, index_name: str, index_dict: dict[str, Any]) -> None:
        super().create_index(index_name, index_dict)
        self._rebuild()

    def drop_index(self, index_name: str) -> None:
        super().drop_index(index_name)
        self._rebuild()

    def drop(self) -> None:
        super().drop()
        self._rebuild()

    def _rebuild(self) -> None:
        fields = {next(iter(spec["key"]))[0] for spec in self._index_specs.values()}
        self._hash = {field: HashIndex(field) for field in fields if "." not in field}
        self._expiries = []
        self._arrival = {key: next(self._order) for key in self._documents}
        for key, document in self._documents.items():
            self._file(key, document)

    def _file(self, key: Key, document: dict[str, Any]) -> None:
        for index in self._hash.values():
            index.add(key, document)
        for spec in self._ttl_indexes.values():
            ttl = _ttl_seconds(spec)
            expires = None if ttl is None else _expiry(document.get(ttl[0]), ttl[1])
            if expires is not None:
                heapq.heappush(self._expiries, (expires, next(self._order), key))

    def reindex(self, key: Key) -> None:
        """File again the document under `key` after an in-place change."""
        document = self._documents.get(key)
        if document is not None:
            self._file(key, document)

    def __setitem__(self, key: Key, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        self._arrival.setdefault(key, next(self._order))
        self._file(key, value)

    def __delitem__(self, key: Key) -> None:
        super().__delitem__(key)
        self._arrival.pop(key, None)
        for index in self._hash.values():
            index.remove(key)

    def get(self, key: Key) -> dict[str, Any] | None:
        """The stored document under `key` (expired ones already gone), or None.

        Without mongomock's reader lock: it keeps readers out while a writer holds it, but a
        writer only ever sets or deletes one key, and one dict read or write is atomic under
        the GIL, so a reader sees the document before the write or after it either way. Its
        two context managers were a fifth of a read by `_id`."""
        self._remove_expired_documents()
        return self._documents.get(key)

    def candidates(self, query: dict[str, Any]) -> list[Key] | None:
        """Keys of the documents that may match `query`; None when it must be scanned."""
        if len(query) == 1 and type(query.get("_id")) is str:
            return [query["_id"]]  # find_one by `_id`, the most frequent query by far
        plan = self._plan(query)
        if plan is None:
            return None
        field, values = plan
        keys = list(dict.fromkeys(values)) if field == "_id" else self._hash[field].lookup(values)
        if len(keys) > 1:  # natural (insertion) order, as a scan yields them
            keys.sort(key=lambda key: self._arrival.get(key, -1))
        return keys

    def _plan(self, query: dict[str, Any]) -> tuple[str, list[Any]] | None:
        """(field, values) of the lookup yielding the fewest candidates, sized before it is made
        (an owner with 10,000 sessions must not be listed to find one session by `_id`)."""
        best: tuple[int, str, list[Any]] | None = None
        for field, condition in query.items():
            if field == "$and" and isinstance(condition, list):
                for part in condition:
                    plan = self._plan(part) if isinstance(part, dict) else None
                    if plan is not None:
                        size = self._size(*plan)
                        if best is None or size < best[0]:
                            best = (size, *plan)
                continue
            if field != "_id" and field not in self._hash:
                continue
            values = _lookup_values(condition)
            if values is not None:
                size = self._size(field, values)
                if best is None or size < best[0]:
                    best = (size, field, values)
        return None if best is None else (best[1], best[2])

    def _size(self, field: str, values: list[Any]) -> int:
        return len(values) if field == "_id" else self._hash[field].count(values)

    def _remove_expired_documents(self) -> None:
        if not self._expiries or self._expiries[0][0] > utcnow():
            return
        now = utcnow()
        while self._expiries and self._expiries[0][0] <= now:
            _, _, key = heapq.heappop(self._expiries)
            document = self._documents.get(key)
            if document is not None and self._expired(document, now):
                del self[key]

    def _expired(self, document: dict[str, Any], now: datetime.datetime) -> bool:
        for spec in self._ttl_indexes.values():
            ttl = _ttl_seconds(spec)
            expires = None if ttl is None else _expiry(document.get(ttl[0]), ttl[1])
            try:
                if expires is not None and expires <= now:
                    return True
            except TypeError:  # a timezone-aware date against mongomock's naive clock
                continue
        return False


class IndexedDatabaseStore(DatabaseStore):
    """A database whose collections are `IndexedCollectionStore`s."""

    def __getitem__(self, col_name: str) -> IndexedCollectionStore:
        store = self._collections.get(col_name)
        if store is None:
            store = self._collections[col_name] = IndexedCollectionStore(col_name)
        return store

    def rename(self, name: str, new_name: str) -> None:
        store = self._collections.pop(name, None) or IndexedCollectionStore(new_name)
        store.name = new_name
        self._collections[new_name] = store


class IndexedServerStore(ServerStore):
    """A server whose databases are `IndexedDatabaseStore`s."""

    def __getitem__(self, db_name: str) -> IndexedDatabaseStore:
        store = self._databases.get(db_name)
        if store is None:
            store = self._databases[db_name] = IndexedDatabaseStore()
        return store


class IndexedCollection(Collection):
    """A mongomock collection that reads through the store's indexes."""

    def _iter_documents(self, filter: dict[str, Any]) -> Iterator[dict[str, Any]]:
        store: IndexedCollectionStore = self._store
        keys = store.candidates(filter) if isinstance(filter, dict) else None
        if keys is None:
            return super()._iter_documents(filter)  # type: ignore[no-any-return]
        if not keys:
            filter_applies(filter, {})  # refuse a malformed filter, as a scan would
        documents = [store.get(key) for key in keys]
        return (doc for doc in documents if doc is not None and filter_applies(filter, doc))

    def stored_matches(self, filter: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The stored documents themselves (not copies) that match `filter`, when its lookup
        narrows the candidates to at most one (a read by `_id`, or by a unique value); None
        when mongomock must answer it.

        For readers that encode the documents at once (the wire server's find): mongomock's
        own find copies every document it returns and makes its dates timezone-aware, about
        half the embedded server's CPU for a read by `_id`; BSON encoding copies anyway, and
        encodes naive dates as UTC, which is what mongomock's aware copies hold.
        """
        store: IndexedCollectionStore = self._store
        keys = store.candidates(filter)
        if keys is None or len(keys) > 1:
            return None
        if not keys:
            filter_applies(filter, {})  # refuse a malformed filter, as a scan would
            return []
        document = store.get(keys[0])
        if document is None:
            return []
        matches = _plain_match(filter, document)
        if matches is None:
            matches = filter_applies(filter, document)
        return [document] if matches else []

    def insert_decoded(self, document: dict[str, Any]) -> None:
        """Insert a document the wire server has just decoded from BSON, as mongod 6.0 takes
        it, without mongomock's `insert_one` (which encodes every document to BSON again to
        validate it, parses a version string to decide how, checks that every key is a string,
        copies the whole document to patch its dates, and refuses any top-level '$' field).

        mongod (src/mongo/db/ops/insert.cpp `fixDocumentForInsert`, and from 5.0 on no longer
        its "Document can't have $ prefixed field names"; jstests/core/field_name_validation.js
        "$-prefixed field names are allowed generally") stores a top-level `$a` field, fills in
        an empty timestamp at the top level only, generates a missing `_id`, and refuses an
        `_id` document holding a '$' field at any depth: 52 DollarPrefixedFieldName "_id fields
        may not contain '$'-prefixed fields: $a is not valid for storage."
        (src/mongo/db/update/storage_validation.cpp `storageValidIdField`). Dates decoded from
        BSON are naive UTC in milliseconds already, as mongomock stores them. 11000 for a taken
        `_id` or unique value, then nothing is stored. An `_id` that is neither a document nor
        hashable (an array, a regex) is left to `insert_one`."""
        if "_id" not in document:
            document["_id"] = ObjectId()  # encoded first in every reply, as bson puts `_id`
        key = document["_id"]
        if isinstance(key, dict):
            dollar = _dollar_key(key)
            if dollar is not None:
                raise OperationFailure(
                    "_id fields may not contain '$'-prefixed fields: "
                    f"{dollar} is not valid for storage.",
                    code=52,
                )
            key = hashdict(key)
        elif isinstance(key, _UNHASHABLE) or not _hashable(key):
            self.insert_one(document)
            return
        store: IndexedCollectionStore = self._store
        if store.get(key) is not None:
            raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)
        for field, value in document.items():
            if type(value) is Timestamp and not value.time and not value.inc:
                document[field] = helpers.get_current_timestamp()
        store[key] = document  # filed in every index here: no second filing after it
        try:
            super()._ensure_uniques(document)
        except DuplicateKeyError:
            del store[key]
            raise

    def _apply_update_document(
        self, existing_document: dict[str, Any], spec: Any, document: Any, was_insert: bool
    ) -> None:
        """mongomock's, all or nothing for the document, as mongod applies an update to one, with
        mongod's operators where mongomock's differ (`mongo_update.refuse_or_apply`: refusals
        first, then `$inc`, `$mul`, `$min` and `$max` applied there, the rest left to mongomock).

        mongomock applies the operators to the stored document itself, one field after another,
        and leaves those before a failure applied (a `$set` before an `$inc` of a string: the
        `$set` stayed, and the document was not filed again in the indexes). mongod builds the
        new document and stores it only when every operator applied: on any failure here the
        document is put back as it was, in place (mongomock's own copy, taken before this, is
        used only for an `_id` change or a duplicate key, after it). A document being made for
        an upsert is not stored unless this succeeds, so it needs no copy."""
        before = None if was_insert else copy.deepcopy(existing_document)
        try:
            if (
                isinstance(document, dict)
                and document
                and all(isinstance(key, str) and key[:1] == "$" for key in document)
            ):  # update operators (not a replacement document)
                document = refuse_or_apply(existing_document, document, inserting=was_insert)
                if not document:  # all applied here: mongomock would take {} for a replacement
                    return
            super()._apply_update_document(existing_document, spec, document, was_insert)
        except BaseException:
            if before is not None:
                existing_document.clear()
                existing_document.update(before)
            raise

    def _ensure_uniques(self, new_data: dict[str, Any]) -> None:
        # Called after every insert and every in-place change: the moment to file it again.
        key = new_data["_id"]
        self._store.reindex(hashdict(key) if isinstance(key, dict) else key)
        super()._ensure_uniques(new_data)


def _dollar_key(document: dict[str, Any]) -> str | None:
    """The first field name starting with '$' in `document` or a document below it (not in
    arrays, whose field names mongod does not validate), or None."""
    for name, value in document.items():
        if name[:1] == "$":
            return name
        if isinstance(value, dict):
            found = _dollar_key(value)
            if found is not None:
                return found
    return None


def _plain_match(filter: dict[str, Any], document: dict[str, Any]) -> bool | None:
    """Whether `document` matches a filter of top-level fields equal to strings or to ints,
    decided without mongomock's matcher; None for any other filter, or when a field of the
    document is not of the kind compared (an array holding the value matches it, for one; a
    boolean never equals a number in MongoDB, which Python's `True == 1` would say), for
    `filter_applies`.

    Two strings are equal in MongoDB when their bytes are (no collation is served here:
    `mongo_commands.refuse_collation`), which is Python's `==` on str; an int equals an int or
    a float of the same value, as MongoDB compares numbers, which is Python's `==` on them.
    This is every read of the gateway's signed-in routes, `{_id}` and `{_id, owner_id}`, and
    the PATCH's findAndModify, `{_id, owner_id, version}`."""
    for field, wanted in filter.items():
        kind = type(wanted)
        if (kind is not str and kind is not int) or field[:1] == "$" or "." in field:
            return None
        value = document.get(field)
        if kind is str:
            if type(value) is not str:
                return None
        elif type(value) is not int and type(value) is not float:
            return None
        if value != wanted:
            return False
    return True


def indexed_client() -> Any:
    """A fresh in-memory MongoDB-API client (mongomock with indexes), timezone-aware."""
    return mongomock.MongoClient(tz_aware=True, _store=IndexedServerStore())


class Collections:
    """The `IndexedCollection` of each namespace of one client, built once."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._known: dict[tuple[str, str], IndexedCollection] = {}

    def get(self, database: str, name: str) -> IndexedCollection:
        """The collection `name` of `database`."""
        collection = self._known.get((database, name))
        if collection is None:
            db = self._client[database]
            collection = IndexedCollection(db, name, db._store, codec_options=db.codec_options)
            self._known[(database, name)] = collection
        return collection
