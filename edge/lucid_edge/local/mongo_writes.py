"""Write commands of the embedded MongoDB (`lucid_edge.local.mongo_server`) on mongomock.

Replies have MongoDB's shape: counts, `upserted`, and per-statement `writeErrors` (code 11000 for
a duplicate key, which pymongo raises as DuplicateKeyError / BulkWriteError); an ordered batch
stops at its first error. findAndModify fails as a whole command instead, as MongoDB does.
"""

from __future__ import annotations

from typing import Any

import bson
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from mongomock.helpers import hashdict
from pymongo.errors import DuplicateKeyError, OperationFailure

from lucid.store.documents import Document
from lucid_edge.local.mongo_core import CommandError, Request, is_number, shell_value, type_name


def _write_error(index: int, error: OperationFailure) -> Document:
    failure = CommandError.from_failure(error)
    return {"index": index, "code": failure.code, "errmsg": failure.errmsg}


def _write_reply(reply: Document, errors: list[Document]) -> Document:
    if errors:
        reply["writeErrors"] = errors
    return reply


def apply_update(
    collection: Any, query: Document, update: Any, *, upsert: bool, multi: bool, array_filters: Any
) -> Any:
    """One update statement: a replacement document, update operators or a pipeline."""
    if isinstance(update, dict) and not any(key.startswith("$") for key in update):
        if multi:
            raise CommandError(9, "multi update is not supported for replacement-style update")
        return collection.replace_one(query, update, upsert=upsert)
    if isinstance(update, dict):
        check_update_document(update)
        dollar = _dollar_field(update)
        # mongomock applies the operators one field after another and leaves those before a '$'
        # field applied when it refuses that one: refused here first, when it would apply at all
        # (mongod refuses it only when a document is changed or upserted, storage validation).
        if dollar is not None and (upsert or collection.find_one(query) is not None):
            raise _dollar_refusal(dollar)
    options = {"array_filters": array_filters} if array_filters else {}
    apply = collection.update_many if multi else collection.update_one
    return apply(query, update, upsert=upsert, **options)


# MongoDB's field and array update operators (mongodb.com/docs/manual/reference/operator/update)
UPDATE_OPERATORS = frozenset(
    [
        "$currentDate",
        "$inc",
        "$min",
        "$max",
        "$mul",
        "$rename",
        "$set",
        "$setOnInsert",
        "$unset",
        "$addToSet",
        "$pop",
        "$pull",
        "$push",
        "$pullAll",
        "$bit",
    ]
)


# The operators that make or change a field: what they write is validated for storage.
_STORING = frozenset(
    ["$set", "$setOnInsert", "$inc", "$mul", "$min", "$max", "$currentDate", "$push", "$addToSet"]
)


def _dollar_field(update: Document) -> str | None:
    """The first path an update operator would write at the top level whose name starts with
    '$' (`{$set: {$x: 1}}`), which mongod refuses; None when there is none. A nested one
    (`a.$b`, `{a: {$b: 1}}`) is stored, as mongod 5.0+ stores it."""
    for operator, fields in update.items():
        if operator in _STORING and isinstance(fields, dict):
            for path in fields:
                if isinstance(path, str) and path[:1] == "$":
                    return path
    return None


def _dollar_refusal(path: str) -> OperationFailure:
    """mongod's refusal of a top-level '$' field an update would store: 52
    DollarPrefixedFieldName (mongodb/mongo src/mongo/db/update/storage_validation.cpp,
    validateDollarPrefixElement, reached for a field an operator creates at the top level;
    mongomock raised bson's InvalidDocument, which was a 1 InternalError here). Its words are
    those of a server whose feature compatibility version is 5.0 or later, as every 6.0 and 7.0
    server's is: the hint names a replacement document whichever kind of update it was (the
    older "... is not valid for storage." is a 4.4 server's)."""
    field = path.split(".", 1)[0]
    return OperationFailure(
        f"The dollar ($) prefixed field '{field}' in '{field}' is not allowed in the context of an"
        " update's replacement document. Consider using an aggregation pipeline with"
        " $replaceWith.",
        code=52,
    )


def check_update_document(update: Document) -> None:
    """Refuse an update document naming an unknown operator (9 FailedToParse) or two paths
    that overlap, as MongoDB does whether or not a document matches.

    MongoDB refuses the whole update, before matching anything, when one path it changes equals
    or contains another, whichever operators name them: `{$set: {a: 1}, $setOnInsert: {a: 2}}`,
    `{$set: {v: 1}, $inc: {v: 1}}`, `{$set: {p: {}, "p.q": 1}}` are each error 40
    ConflictingUpdateOperators, "Updating the path 'a' would create a conflict at 'a'" (pymongo:
    WriteError, or OperationFailure from findAndModify), even where the document exists and
    `$setOnInsert` would not apply. mongomock applies them one after the other instead.
    """
    seen: list[tuple[str, ...]] = []
    for operator, fields in update.items():
        if operator not in UPDATE_OPERATORS:  # mongomock refuses it only when a document matches
            raise OperationFailure(
                f"Unknown modifier: {operator}. Expected a valid update modifier or pipeline-style"
                " update specified as an array",
                code=9,
            )
        if not isinstance(fields, dict):
            continue  # a malformed operand: mongomock refuses it itself
        if operator in _ARITHMETIC:
            _refuse_non_numeric_arguments(operator, fields)
        elif operator == "$pop":
            _refuse_pop_arguments(fields)
        elif operator == "$currentDate":
            _refuse_current_date_arguments(fields)
        elif operator == "$bit":
            _refuse_bit_arguments(fields)
        elif operator == "$rename":
            _refuse_rename_targets(fields)
        # $rename changes both the field it takes and the one it writes
        paths = [*fields, *fields.values()] if operator == "$rename" else list(fields)
        for path in paths:
            if not isinstance(path, str):
                continue
            parts = tuple(path.split("."))
            for other in seen:
                shorter = min(len(parts), len(other))
                if parts[:shorter] == other[:shorter]:
                    at = ".".join(parts[:shorter])
                    raise OperationFailure(
                        f"Updating the path '{path}' would create a conflict at '{at}'", code=40
                    )
            seen.append(parts)


# mongod's ArithmeticNode: its verb in a message (mongodb/mongo
# src/mongo/db/update/arithmetic_node.cpp `getNameForOp`).
_ARITHMETIC = {"$inc": "increment", "$mul": "multiply"}


def _refuse_non_numeric_arguments(operator: str, fields: Document) -> None:
    """14 TypeMismatch for an `$inc` or `$mul` by what is not a number, as mongod refuses it
    when it parses the update, whether or not a document matches (ArithmeticNode::init:
    "Cannot increment with non-numeric argument: {s: \"x\"}"). mongomock would add a string
    to a string, or a number to a bool."""
    for path, amount in fields.items():
        if not is_number(amount):
            raise OperationFailure(
                f"Cannot {_ARITHMETIC[operator]} with non-numeric argument: "
                f"{{{path}: {shell_value(amount)}}}",
                code=14,
            )


def _refuse_pop_arguments(fields: Document) -> None:
    """9 FailedToParse for a `$pop` by a whole number other than 1 or -1, as mongod refuses it
    when it parses the update (src/mongo/db/update/pop_node.cpp PopNode::init: "$pop expects 1
    or -1, found: 2"); mongomock answered 2 BadValue, and only where a document matched."""
    for amount in fields.values():
        whole = type(amount) in (int, Int64) or (type(amount) is float and amount.is_integer())
        if whole and int(amount) not in (1, -1):
            raise OperationFailure(f"$pop expects 1 or -1, found: {int(amount)}", code=9)


def _refuse_current_date_arguments(fields: Document) -> None:
    """2 BadValue for a `$currentDate` of what is neither a boolean nor `{$type: "date"}` /
    `{$type: "timestamp"}`, in mongod's words (src/mongo/db/update/current_date_node.cpp
    CurrentDateNode::init), whether or not a document matches; mongomock stored the date."""
    for value in fields.values():
        if type(value) is bool:
            continue
        if type(value) is not dict:
            raise OperationFailure(
                f"{type_name(value)} is not valid type for $currentDate. Please use a boolean"
                " ('true') or a $type expression ({$type: 'timestamp/date'}).",
                code=2,
            )
        for option in value:
            if option != "$type":
                raise OperationFailure(f"Unrecognized $currentDate option: {option}", code=2)
        if value.get("$type") not in ("date", "timestamp"):
            raise OperationFailure(
                "The '$type' string field is required to be 'date' or 'timestamp': "
                "{$currentDate: {field : {$type: 'date'}}}",
                code=2,
            )


def _refuse_bit_arguments(fields: Document) -> None:
    """2 BadValue for a `$bit` that is not {and|or|xor: an int or a long, ...}, in mongod's
    words when it parses the update (src/mongo/db/update/bit_node.cpp BitNode::init); mongomock
    has no `$bit` (it answered 2 "ValueError: field names cannot start with $ [$bit]")."""
    usage = "{$bit: {field: {and/or/xor: #}}"
    for operations in fields.values():
        if type(operations) is not dict:
            raise OperationFailure(
                f"The $bit modifier is not compatible with a {type_name(operations)}. You must"
                f" pass in an embedded document: {usage}",
                code=2,
            )
        for name, operand in operations.items():
            shown = f"{{{name}: {shell_value(operand)}}}"
            if name not in ("and", "or", "xor"):
                raise OperationFailure(
                    "The $bit modifier only supports 'and', 'or', and 'xor', not"
                    f" '{name}' which is an unknown operator: {shown}",
                    code=2,
                )
            if type_name(operand) not in ("int", "long"):
                raise OperationFailure(
                    "The $bit modifier field must be an Integer(32/64 bit); a"
                    f" '{type_name(operand)}' is not supported here: {shown}",
                    code=2,
                )
        if not operations:
            raise OperationFailure(
                f"You must pass in at least one bitwise operation. The format is: {usage}",
                code=2,
            )


def _refuse_rename_targets(fields: Document) -> None:
    """2 BadValue for a `$rename` to what is not a string, as mongod refuses it when it parses
    the update (src/mongo/db/update/update_object_node.cpp UpdateObjectNode::parseAndMerge:
    "The 'to' field for $rename must be a string: s: 1"); mongomock raised a TypeError."""
    for source, target in fields.items():
        if type(target) is not str:
            raise OperationFailure(
                f"The 'to' field for $rename must be a string: {source}: {shell_value(target)}",
                code=2,
            )


_MISSING = object()
# What `update_stored` serves: the gateway's findAndModify and update statements by `_id`.
_SERVED = frozenset(["$set", "$inc", "$setOnInsert"])


def update_stored(collection: Any, document: Document, update: Any) -> bool | None:
    """Apply `$set` / `$inc` (and a `$setOnInsert`, which does nothing to a stored document) of
    top-level fields to the stored `document` itself, as mongomock's `_update` would; whether a
    field changed, or None, with nothing done, for any other update (a replacement, a pipeline,
    another operator, a dotted or '$' path, `_id`, an `$inc` of or on what is not an int or a
    float, an empty timestamp to fill in), which mongomock then applies.

    mongomock deep-copies the document before every update to roll back with, BSON-encodes
    every `$set` value to validate it, asks the client for its server version and patches the
    dates of the query and the update: about a fifth of the server's instructions for the
    PATCH's findAndModify. Here only the fields the update names are kept aside, and put back
    if the change breaks a unique index (11000, as mongomock answers, with the indexes filed
    again). A decoded command cannot hold what that validation refuses (BSON it came as) nor
    timezone-aware dates (bson decodes naive UTC by default); an empty timestamp in a `$set`,
    which mongomock fills in, is left to it.
    """
    if type(update) is not dict or not update or not update.keys() <= _SERVED:
        return None
    check_update_document(update)  # 9 and 40, as for any update
    sets, increments = update.get("$set", {}), update.get("$inc", {})
    on_insert = update.get("$setOnInsert", {})
    if type(sets) is not dict or type(increments) is not dict or type(on_insert) is not dict:
        return None
    for field in (*sets, *increments):  # $setOnInsert's are never applied to a match
        if not field or field[:1] == "$" or "." in field or field == "_id":
            return None
    for field, amount in increments.items():
        if type(amount) not in (int, float) or type(document.get(field, 0)) not in (int, float):
            return None
    for value in sets.values():
        if _holds_empty_timestamp(value):
            return None
    kept: dict[str, Any] = {}
    for field, value in sets.items():
        kept[field] = document.get(field, _MISSING)
        document[field] = value
    for field, amount in increments.items():
        kept[field] = document.get(field, _MISSING)
        document[field] = document.get(field, 0) + amount
    changed = any(old is _MISSING or old != document[field] for field, old in kept.items())
    if changed:  # as mongomock: an update that changes nothing is not checked or filed again
        try:
            collection._ensure_uniques(document)  # files it again in every index, then checks
        except DuplicateKeyError:
            for field, old in kept.items():
                if old is _MISSING:
                    del document[field]
                else:
                    document[field] = old
            key = document["_id"]
            collection._store.reindex(hashdict(key) if isinstance(key, dict) else key)
            raise
    return changed


def _holds_empty_timestamp(value: Any) -> bool:
    """Whether `value` is or holds Timestamp(0, 0), which mongomock replaces with the time."""
    if type(value) is dict:
        return any(_holds_empty_timestamp(item) for item in value.values())
    if type(value) is list:
        return any(_holds_empty_timestamp(item) for item in value)
    return type(value) is Timestamp and not value.time and not value.inc


def insert(collection: Any, request: Request) -> Document:
    """Insert `documents`."""
    inserted, errors = 0, []
    for index, document in enumerate(request.command.get("documents", [])):
        try:
            collection.insert_decoded(document)
            inserted += 1
        except OperationFailure as error:
            errors.append(_write_error(index, error))
            if request.command.get("ordered", True):
                break
    return _write_reply({"n": inserted}, errors)


def update(collection: Any, request: Request) -> Document:
    """Apply `updates` statements (q, u, upsert, multi, arrayFilters)."""
    matched = modified = 0
    upserted: list[Document] = []
    errors: list[Document] = []
    for index, statement in enumerate(request.command.get("updates", [])):
        try:
            served = _update_one_stored(collection, statement)
            if served is not None:
                matched += served[0]
                modified += served[1]
                continue
            result = apply_update(
                collection,
                statement.get("q") or {},
                statement.get("u"),
                upsert=bool(statement.get("upsert")),
                multi=bool(statement.get("multi")),
                array_filters=statement.get("arrayFilters"),
            )
        except OperationFailure as error:
            errors.append(_write_error(index, error))
            if request.command.get("ordered", True):
                break
            continue
        matched += result.matched_count
        modified += result.modified_count
        if result.upserted_id is not None:
            upserted.append({"index": index, "_id": result.upserted_id})
    reply: Document = {"n": matched + len(upserted), "nModified": modified}
    if upserted:
        reply["upserted"] = upserted
    return _write_reply(reply, errors)


def _update_one_stored(collection: Any, statement: Document) -> tuple[int, int] | None:
    """(matched, modified) of an update statement served on the stored document (one that is
    not multi, has no arrayFilters, and whose query narrows to at most one document: by `_id`,
    as the gateway's update_one); None when mongomock must apply it (an upsert that matches
    nothing included)."""
    query = statement.get("q") or {}
    if statement.get("multi") or statement.get("arrayFilters") or type(query) is not dict:
        return None
    change = statement.get("u")
    if type(change) is not dict or not change.keys() <= _SERVED:
        return None
    stored = collection.stored_matches(query)
    if stored is None or (not stored and statement.get("upsert")):
        return None
    if not stored:
        check_update_document(change)  # refused whether or not a document matches
        return 0, 0
    changed = update_stored(collection, stored[0], change)
    return None if changed is None else (1, int(changed))


def delete(collection: Any, request: Request) -> Document:
    """Apply `deletes` statements: limit 1 deletes the first match, limit 0 every match."""
    deleted = 0
    for statement in request.command.get("deletes", []):
        limit = statement.get("limit", 0)
        if limit not in (0, 1):
            raise CommandError(9, f"delete limit must be 0 or 1, not {limit!r}")
        remove = collection.delete_one if limit == 1 else collection.delete_many
        deleted += remove(statement.get("q") or {}).deleted_count
    return {"n": deleted}


def find_and_modify(collection: Any, request: Request) -> Document:
    """Update, replace, upsert or remove the first match (in `sort` order); answer the document
    before the change, or after it with `new` (projected by `fields`)."""
    command = request.command
    query, fields = command.get("query") or {}, command.get("fields") or None
    change, remove = command.get("update"), bool(command.get("remove"))
    new, upsert = bool(command.get("new")), bool(command.get("upsert"))
    if remove == (change is not None) or (remove and (new or upsert)):
        raise CommandError(9, "findAndModify takes either an update or remove=true alone")
    if isinstance(change, dict) and any(str(key)[:1] == "$" for key in change):
        check_update_document(change)  # refused whether or not a document matches, as mongod
    sort = request.sort()
    # The stored document itself when the query's lookup narrows to one (by `_id`, as every
    # findAndModify of the gateway): mongomock's find_one would copy it, twice per command.
    # It is changed in place below, so what is answered as it was is encoded before that.
    stored = collection.stored_matches(query) if isinstance(query, dict) else None
    if stored is None:
        target = collection.find_one(query, sort=sort)
    else:
        target = stored[0] if stored else None
    if target is None and (remove or not upsert):
        return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None}
    by_id = None if target is None else {"_id": target["_id"]}
    if by_id is None or fields is None:
        before = target
        if target is not None and stored is not None and not remove and not new:
            before = RawBSONDocument(bson.encode(target))
    else:
        before = collection.find_one(by_id, fields)
    if remove:
        collection.delete_one(by_id)
        return {"lastErrorObject": {"n": 1}, "value": before}
    served = stored and not command.get("arrayFilters")  # unused ones are refused, by mongomock
    if served and update_stored(collection, target, change) is not None:
        # Changed in place: with no projection the stored document is what `new` answers.
        after = target if fields is None else collection.find_one(by_id, fields)
        return {
            "lastErrorObject": {"n": 1, "updatedExisting": True},
            "value": after if new else before,
        }
    result = apply_update(
        collection, by_id or query, change, upsert=by_id is None, multi=False,
        array_filters=command.get("arrayFilters"),
    )  # fmt: skip
    outcome: Document = {"n": 1, "updatedExisting": by_id is not None}
    if by_id is None:
        outcome["upserted"] = result.upserted_id
        by_id = {"_id": result.upserted_id}
    return {
        "lastErrorObject": outcome,
        "value": _read(collection, by_id, fields) if new else before,
    }


def _read(collection: Any, by_id: Document, fields: Document | None) -> Any:
    """The document `by_id` as find_one answers it: the stored one, not a copy, when there is
    no projection (the reply encodes it before any other command runs)."""
    stored = None if fields is not None else collection.stored_matches(by_id)
    if stored is None:
        return collection.find_one(by_id, fields)
    return stored[0] if stored else None
