"""mongod's update operators on one document, where mongomock answers otherwise.

mongomock (`Collection._apply_update_document`) has no `$mul`, adds Python's numbers only (an
`$inc` of a Decimal128 was a TypeError, of an Int64 stored an int32), compares the `$min` /
`$max` value with Python's `<` (a TypeError across types), and applies the array operators to
what is not an array (`$push` onto a string: an AttributeError, a 1 InternalError; `$pullAll`
of a string made it a list; `$pop` of a missing field: a KeyError) or writes through a field
that cannot hold one (`{$set: {"s.a": 1}}` on a string `s` changed nothing and succeeded).

Here mongod's update nodes (mongodb/mongo src/mongo/db/update/*_node.cpp) are followed for every
path of plain field names (no array on the way, no positional `$` part: those stay mongomock's):
each refusal of `refuse_or_apply` comes before anything is applied, then `$inc`, `$mul`, `$min`
and `$max` are applied here and the rest of the update is left to mongomock. The caller
(`IndexedCollection._apply_update_document`) puts the document back as it was on any failure,
as mongod applies an update to a document all or nothing.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any, NamedTuple

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.objectid import ObjectId
from pymongo.errors import OperationFailure

from lucid_edge.local.mongo_core import is_number, shell_value, type_name

ABSENT = object()
LEFT = object()  # a value not ordered here: `$min` / `$max` of it stays mongomock's

# The operators that create the path they name when it is missing: mongod refuses them, 28
# PathNotViable, where a part of the path is held by a value that is neither a document nor an
# array (ModifierNode::applyToNonexistentElement -> pathsupport::createPathAt, "Cannot create
# field 'a' in element {s: \"x\"}"). $unset, $pop, $pull and $pullAll change nothing there.
_CREATING = frozenset(
    [
        "$set",
        "$setOnInsert",
        "$inc",
        "$mul",
        "$min",
        "$max",
        "$bit",
        "$currentDate",
        "$push",
        "$addToSet",
    ]
)
_NOTHING_WHERE_MISSING = frozenset(["$unset", "$pop", "$pull", "$pullAll"])
# Applied here (on a plain path), not by mongomock.
_APPLIED_HERE = frozenset(["$inc", "$mul", "$min", "$max", "$bit"])


class Place(NamedTuple):
    """Where a dotted path leads in a document."""

    value: Any  # what the path holds: ABSENT when it does not exist
    blocked: tuple[str, str, Any] | None  # (part that cannot be created, its holder, its value)


def locate(document: dict[str, Any], path: str) -> Place | None:
    """Where `path` leads in `document`; None for a path mongomock is left to (one through an
    array, with a positional or empty part)."""
    parts = path.split(".")
    if any(not part or part[0] == "$" for part in parts):
        return None
    current: Any = document
    for index, part in enumerate(parts):
        if isinstance(current, list):
            return None
        if not isinstance(current, dict):
            return Place(ABSENT, (part, parts[index - 1], current))
        if part not in current:
            return Place(ABSENT, None)
        current = current[part]
    return Place(current, None)


def _put(document: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` (located, not blocked) to `value`, making the documents on its way."""
    *parents, leaf = path.split(".")
    current = document
    for part in parents:
        current = current.setdefault(part, {})
    current[leaf] = value


def refuse_or_apply(
    document: dict[str, Any], update: dict[str, Any], *, inserting: bool
) -> dict[str, Any]:
    """Refuse `update` for `document` as mongod does, or apply its `$inc`, `$mul`, `$min` and
    `$max` of plain paths to `document`; what is left for mongomock (possibly nothing). A
    document being made by an upsert (`inserting`) takes `$setOnInsert` too."""
    held = f"_id: {shell_value(document['_id'])}" if "_id" in document else "no id"
    changes: list[tuple[str, Any]] = []
    done: set[tuple[str, str]] = set()
    for operator, fields in update.items():
        if type(fields) is not dict or (operator == "$setOnInsert" and not inserting):
            continue
        for path, argument in fields.items():
            place = locate(document, path) if type(path) is str else None
            if place is None:
                continue
            if place.blocked is not None:
                if operator in _CREATING:
                    part, holder, value = place.blocked
                    raise OperationFailure(
                        f"Cannot create field '{part}' in element "
                        f"{{{holder}: {shell_value(value)}}}",
                        code=28,
                    )
                if operator in _NOTHING_WHERE_MISSING:
                    done.add((operator, path))
                continue
            _refuse_for_value(operator, path, place.value, held)
            fixed = path == "_id" and not inserting and place.value is not ABSENT
            if fixed and operator == "$set" and not _equal(place.value, argument):
                raise _immutable_id(argument)
            if fixed and operator == "$unset":
                raise _immutable_id(ABSENT)
            if operator == "$pop" and place.value is ABSENT:
                done.add((operator, path))  # mongod: a no-op (mongomock: a KeyError)
            elif operator in _APPLIED_HERE:
                result = _applied(operator, place.value, argument)
                if result is LEFT:
                    continue
                if result is not ABSENT:
                    if fixed:  # $min / $max may set a document, $inc / $mul cannot
                        raise _immutable_id(result if operator in ("$min", "$max") else ABSENT)
                    changes.append((path, result))
                done.add((operator, path))
    for path, result in changes:
        _put(document, path, result)
    if not done:
        return update
    rest: dict[str, Any] = {}
    for operator, fields in update.items():
        if type(fields) is dict:
            kept = {path: arg for path, arg in fields.items() if (operator, path) not in done}
            if kept:
                rest[operator] = kept
        else:
            rest[operator] = fields
    return rest


def _refuse_for_value(operator: str, path: str, value: Any, held: str) -> None:
    """mongod's refusal of `operator` on the value a path holds, if any."""
    if value is ABSENT:
        return
    leaf = path.rsplit(".", 1)[-1]
    kind = type_name(value)
    if operator in ("$inc", "$mul") and not is_number(value):
        # src/mongo/db/update/arithmetic_node.cpp ArithmeticNode::updateExistingElement
        raise OperationFailure(
            f"Cannot apply {operator} to a value of non-numeric type. {{{held}}} has the field"
            f" '{leaf}' of non-numeric type {kind}",
            code=14,
        )
    if operator == "$bit" and type_name(value) not in ("int", "long"):
        # bit_node.cpp BitNode::updateExistingElement (its words, "type._id", as they are)
        raise OperationFailure(
            f"Cannot apply $bit to a value of non-integral type.{held} has the field {leaf} of"
            f" non-integer type {kind}",
            code=2,
        )
    if isinstance(value, list):
        return
    if operator == "$push":  # push_node.cpp PushNode::performPush: 2 BadValue
        raise OperationFailure(
            f"The field '{path}' must be an array but is of type {kind} in document {{{held}}}",
            code=2,
        )
    if operator == "$addToSet":  # addtoset_node.cpp AddToSetNode::updateExistingElement
        raise OperationFailure(
            f"Cannot apply $addToSet to non-array field. Field named '{leaf}' has non-array"
            f" type {kind}",
            code=2,
        )
    if operator == "$pop":  # pop_node.cpp PopNode::updateExistingElement: 14 TypeMismatch
        raise OperationFailure(
            f"Path '{path}' contains an element of non-array type '{kind}'", code=14
        )
    if operator in ("$pull", "$pullAll"):  # array_culling_node.cpp (both derive from it)
        raise OperationFailure("Cannot apply $pull to a non-array value", code=2)


def _equal(stored: Any, argument: Any) -> bool:
    """Whether mongod takes two values as equal (numbers by value, in BSON's order)."""
    wanted, held = order(argument), order(stored)
    return wanted == held if wanted is not None and held is not None else bool(argument == stored)


def _immutable_id(value: Any) -> OperationFailure:
    """66 ImmutableField for an update that would change a stored document's `_id`, in mongod's
    words (src/mongo/db/update/modifier_node.cpp): an operator that can set a document
    (`$set`, `$min`, `$max`: canSetObjectValue) names the value it would store
    (checkImmutablePathsNotModifiedFromOriginal), any other does not
    (checkImmutablePathsNotModified). mongomock refused it as 2 BadValue in other words."""
    if value is ABSENT:
        return OperationFailure(
            "Performing an update on the path '_id' would modify the immutable field '_id'",
            code=66,
        )
    return OperationFailure(
        f"Updating the path '_id' to _id: {shell_value(value)} would modify the immutable field"
        " '_id'",
        code=66,
    )


def _applied(operator: str, stored: Any, argument: Any) -> Any:
    """The value `operator` leaves at a path holding `stored` (ABSENT: missing), ABSENT when
    it changes nothing, LEFT when mongomock is left to it."""
    if operator in ("$inc", "$mul"):
        if stored is ABSENT:
            # ArithmeticNode::setValueForNewElement: $inc stores its argument; $mul a zero of
            # its argument's type (the argument times an int32 0)
            return argument if operator == "$inc" else arithmetic("$mul", argument, 0)
        result = arithmetic(operator, stored, argument)
        # ArithmeticNode::updateExistingElement: a result identical to the value (the same
        # type and value, SafeNum::isIdentical) changes nothing
        same = type_name(result) == type_name(stored) and result == stored
        return ABSENT if same else result
    if operator == "$bit":
        if stored is ABSENT:  # BitNode::setValueForNewElement: the operations on an int32 0
            return bitwise(0, argument)
        result = bitwise(stored, argument)
        same = type_name(result) == type_name(stored) and result == stored
        return ABSENT if same else result
    # $min / $max: compare_node.cpp CompareNode::updateExistingElement, in BSON's order
    if stored is ABSENT:
        return argument
    wanted, held = order(argument), order(stored)
    if wanted is None or held is None:
        return LEFT
    if (wanted < held) if operator == "$min" else (wanted > held):
        return argument
    return ABSENT


def arithmetic(operator: str, stored: Any, argument: Any) -> Any:
    """`stored` plus or times `argument`, typed as mongod's SafeNum types it
    (src/mongo/util/safe_num.cpp): a decimal when either is one, else a double when either is
    one, else a long when either is one (Int64, so that a small one stays a long), else an
    int (which is encoded int32 when it fits, int64 when it does not, as mongod widens it)."""
    kinds = {type_name(stored), type_name(argument)}
    if "decimal" in kinds:
        with decimal.localcontext(create_decimal128_context()) as context:
            left, right = _decimal(stored), _decimal(argument)
            total = (
                context.add(left, right) if operator == "$inc" else context.multiply(left, right)
            )
            return Decimal128(total)
    if "double" in kinds:
        return (
            float(stored) + float(argument)
            if operator == "$inc"
            else float(stored) * float(argument)
        )
    result = int(stored) + int(argument) if operator == "$inc" else int(stored) * int(argument)
    if not -(2**63) <= result < 2**63:
        # SafeNum's addInt64Int64 / mulInt64Int64 answer an invalid SafeNum on overflow, which
        # mutablebson's Element::setValueSafeNum refuses, 12 UnsupportedFormat (mongodb/mongo
        # src/mongo/bson/mutable/document.cpp); mongomock stored a number BSON cannot encode,
        # and every later read of the document was a 1 InternalError.
        raise OperationFailure("Don't know how to handle unexpected SafeNum type", code=12)
    return Int64(result) if "long" in kinds else result


def bitwise(stored: Any, operations: dict[str, Any]) -> Any:
    """`stored` after a `$bit`'s and / or / xor, in their order (bit_node.cpp applyOpList; a
    missing field starts as an int32 0), typed as SafeNum types them: a long when either side is
    one, else an int."""
    result, long = int(stored), type_name(stored) == "long"
    for name, operand in operations.items():
        long = long or type_name(operand) == "long"
        if name == "and":
            result &= int(operand)
        elif name == "or":
            result |= int(operand)
        else:
            result ^= int(operand)
    return Int64(result) if long else result


def _decimal(value: Any) -> decimal.Decimal:
    """A number as SafeNum takes it into a decimal: a double rounded to 15 significant digits
    (Decimal128(double), its default kRoundTo15Digits), an integer exactly."""
    if type(value) is Decimal128:
        return value.to_decimal()
    if type(value) is float:
        return decimal.Decimal(f"{value:.14e}")
    return decimal.Decimal(int(value))


def order(value: Any) -> tuple[Any, ...] | None:
    """`value`'s place in BSON's comparison order (mongodb.com/docs/manual/reference/
    bson-type-comparison-order: null, numbers, strings, ..., ObjectId, booleans, dates), for the
    types compared here; None for any other (documents, arrays, binary, ...)."""
    if value is None:
        return (5,)
    if type(value) is bool:
        return (40, value)
    if is_number(value):
        number = value.to_decimal() if type(value) is Decimal128 else decimal.Decimal(value)
        if number.is_nan():
            return (10, 0)  # NaN sorts before every other number
        return (10, 1, number)
    if type(value) is str:
        return (15, value)  # code point order is UTF-8 byte order, as mongod compares strings
    if type(value) is ObjectId:
        return (35, value.binary)
    if type(value) is datetime.datetime:
        naive = value.replace(tzinfo=None) - (value.utcoffset() or datetime.timedelta())
        return (45, naive)
    return None
