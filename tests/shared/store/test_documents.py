"""Ids, timestamps and safe JSON objects shared by the repositories (no network)."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import bson
import pytest
from bson.tz_util import FixedOffset
from bson.tz_util import utc as bson_utc
from hypothesis import example, given
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from lucid.errors import ServiceUnavailableError
from lucid.store.documents import (
    DatabaseRefusedError,
    Document,
    check_json_object,
    database_errors,
    is_valid_id,
    iso,
    new_id,
    utcnow,
)


def test_new_ids_are_valid_and_distinct() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_valid_id(value) for value in ids)


@given(st.binary(min_size=16, max_size=16))
@example(b"\x00" * 16)
@example(b"\xff" * 16)
def test_a_new_id_is_the_uuid4_of_its_random_bytes(random_bytes: bytes) -> None:
    # uuid4 is UUID(bytes=os.urandom(16), version=4): the same 16 bytes give the same id
    with mock.patch.object(os, "urandom", lambda size: random_bytes[:size]):
        made = new_id()
    assert made == uuid.UUID(bytes=random_bytes, version=4).hex
    assert uuid.UUID(made).version == 4
    assert uuid.UUID(made).variant == uuid.RFC_4122


@pytest.mark.parametrize(
    "value", ["", "0" * 31, "G" * 32, "0" * 32 + "\n", None, 12, {"$ne": None}]
)
def test_malformed_ids_are_refused(value: object) -> None:
    assert not is_valid_id(value)


def test_utcnow_has_millisecond_precision_and_iso_marks_utc() -> None:
    now = utcnow()
    assert now.microsecond % 1000 == 0
    assert now.tzinfo is UTC
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == "2026-01-02T03:04:05.006Z"
    assert iso(None) is None


def _iso_by_conversion(moment: datetime) -> str:
    """What iso() wrote before its fast path, and still writes for a moment not in UTC."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Every tzinfo a datetime may carry: none (astimezone takes it as local time), the codec's own
# (pymongo's tz_aware documents carry bson.tz_util.utc, a Python tzinfo), datetime's UTC, other
# fixed offsets down to the microsecond, and a zone whose offset is zero in winter only.
_ZONES = st.one_of(
    st.none(),
    st.sampled_from([bson_utc, UTC, FixedOffset(0, "zero"), ZoneInfo("Europe/London")]),
    st.builds(
        timezone,
        st.timedeltas(
            min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
        ),
    ),
    st.builds(FixedOffset, st.integers(min_value=-1439, max_value=1439), st.just("offset")),
)


@given(st.datetimes(timezones=_ZONES))
@example(datetime(1, 1, 1, tzinfo=bson_utc))
@example(datetime(999, 2, 3, 4, 5, 6, 999_999, tzinfo=bson_utc))  # truncated, never rounded
@example(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
@example(datetime(2026, 1, 1, 0, 0, 0, 1_000, tzinfo=timezone(timedelta(seconds=30))))
@example(datetime(2026, 1, 1, 0, 0, 0, 0, tzinfo=timezone(timedelta(microseconds=1))))
def test_iso_writes_what_converting_to_utc_writes_for_any_datetime(moment: datetime) -> None:
    try:
        expected = _iso_by_conversion(moment)
    except OverflowError:  # a moment that is no datetime in UTC (year 1 at +01:00)
        with pytest.raises(OverflowError):
            iso(moment)
        return
    assert iso(moment) == expected


def test_iso_of_what_the_store_gives_back_is_the_stored_moment_in_utc() -> None:
    """What a tz_aware client decodes (bson.tz_util.utc) is written, to the millisecond."""
    stored = datetime(2026, 11, 26, 4, 10, 22, 123_000, tzinfo=UTC)
    document: dict[str, Any] = bson.decode(
        bson.encode({"at": stored}), bson.CodecOptions(tz_aware=True)
    )
    assert document["at"].tzinfo is bson_utc
    assert iso(document["at"]) == "2026-11-26T04:10:22.123Z"
    assert iso(datetime(5, 6, 7, 8, 9, 10, 11_999, tzinfo=bson_utc)) == "0005-06-07T08:09:10.011Z"


@pytest.mark.parametrize(
    "value",
    [{"$gt": 1}, {"a.b": 1}, {"x": {"$where": "1"}}, {"x": [{"y": [{"a.b": 1}]}]}],
)
def test_operator_like_keys_are_refused_at_any_depth(value: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="keys"):
        check_json_object(value, max_bytes=1000)


def test_size_nan_and_depth_limits() -> None:
    assert check_json_object({"a": "x" * 90}, max_bytes=100) == {"a": "x" * 90}
    with pytest.raises(ValueError, match="100 bytes"):
        check_json_object({"a": "x" * 100}, max_bytes=100)
    with pytest.raises(ValueError, match="NaN"):
        check_json_object({"a": math.nan}, max_bytes=100)
    deep: dict[str, Any] = {}
    for _ in range(17):
        deep = {"k": deep}
    with pytest.raises(ValueError, match="deeper"):
        check_json_object(deep, max_bytes=10_000)
    # an array is a level as an object is: 16 levels (the object, then 15 arrays) and no more
    nested: Any = 1
    for _ in range(15):
        nested = [nested]
    assert check_json_object({"a": nested}, max_bytes=10_000) == {"a": nested}
    with pytest.raises(ValueError, match="deeper"):
        check_json_object({"a": [nested]}, max_bytes=10_000)


UNSTORABLE: dict[str, Any] = {
    "int above int64": {"n": 2**63},
    "int below int64": {"n": -(2**63) - 1},
    "nested huge int": {"a": [{"b": 10**30}]},
    "NUL in a key": {"a\x00b": 1},
    "lone surrogate in a value": {"a": "\ud800"},
    "lone surrogate in a key": {"\udc00": 1},
    "lone surrogate deep in a list": {"a": [["\udfff"]]},
    "key that is not a string": {"a": {1: 2}},
}
STORABLE: dict[str, Any] = {
    "int64 bounds": {"min": -(2**63), "max": 2**63 - 1},
    "NUL in a value": {"a": "x\x00y"},
    "astral plane": {"emoji": "\U0001f600", "\u00e9t\u00e9": [1.5, True, None]},
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_what_bson_cannot_encode_is_a_value_error_before_any_write(case: str) -> None:
    value = UNSTORABLE[case]
    # GIVEN a value MongoDB's own encoder refuses (what the insert would fail with: a 500)
    with pytest.raises((bson.errors.InvalidDocument, OverflowError, UnicodeEncodeError)):
        bson.encode(value)
    # THEN the check refuses it first, with a reason pydantic reports for the field
    with pytest.raises(ValueError, match=r"keys|integers|Unicode"):
        check_json_object(value, max_bytes=1000)


def test_python_values_that_are_not_json_are_refused() -> None:
    # Request bodies are parsed JSON; anything else handed to the check is refused, not stored.
    with pytest.raises(ValueError, match="JSON values only, not bytes"):
        check_json_object({"a": b"\x00"}, max_bytes=1000)


@pytest.mark.parametrize("case", list(STORABLE))
def test_what_bson_can_encode_passes_unchanged(case: str) -> None:
    value = STORABLE[case]
    assert check_json_object(value, max_bytes=1000) == value
    assert bson.decode(bson.encode(value)) == value


@pytest.fixture
def unconnected() -> Iterator[Database[Document]]:
    """A database of a client that never connects: the errors below are raised by the test."""
    client: MongoClient[Document] = MongoClient("mongodb://127.0.0.1:9/lucid", connect=False)
    yield client.lucid
    client.close()


@pytest.mark.parametrize("error", [ServerSelectionTimeoutError("x"), AutoReconnect("x")])
def test_outages_become_service_unavailable(
    error: Exception, unconnected: Database[Document]
) -> None:
    outage = pytest.raises(ServiceUnavailableError, match="the sessions store is unavailable")
    with outage, database_errors("sessions", unconnected):
        raise error


def test_a_user_without_the_privilege_is_503_and_its_log_line_quotes_no_command(
    caplog: pytest.LogCaptureFixture, unconnected: Database[Document]
) -> None:
    # GIVEN a server that signs the user in but refuses it the command (13 Unauthorized, whose
    # message goes on to quote the command and its filter: values that are not the log's).
    # Built here, not answered over the wire: the in-memory MongoDB has no users to sign in,
    # so the only 13 it can answer is "Command find requires authentication"
    # (tests/functions/sessions/test_sessions_outage.py).
    said = 'not authorized on lucid to execute command { find: "tokens", filter: { jti: "j-1" } }'
    reply = {"ok": 0.0, "errmsg": said, "code": 13, "codeName": "Unauthorized"}
    refused = OperationFailure(said, 13, reply)
    # WHEN it reaches the store's translation, twice THEN it is the store's 503 saying that the
    # operation was refused, and one ERROR line names the refusal and its code without the
    # command, and what to check
    translated = pytest.raises(
        DatabaseRefusedError, match=r"^the tokens store refused the operation$"
    )
    for _ in range(2):
        with translated as raised, database_errors("tokens", unconnected["tokens"]):
            raise refused
    assert (raised.value.status, raised.value.code) == (503, 13)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            "MongoDB refused the operation (not authorized on lucid: code 13 Unauthorized), "
            "first at the tokens store's request: check that MONGODB_URI names a user, and "
            "that the user's roles allow the command (readWrite on the gateway's database)",
        )
    ]


def test_atlas_refusing_the_password_is_the_stores_503(
    caplog: pytest.LogCaptureFixture, unconnected: Database[Document]
) -> None:
    # GIVEN MongoDB Atlas's answer to a wrong password (its proxy's own code, not 18; built
    # here: no server of the tests answers as Atlas's proxy does)
    said = "bad auth : Authentication failed."
    reply = {"ok": 0, "errmsg": said, "code": 8000, "codeName": "AtlasError"}
    refused = OperationFailure(said, 8000, reply)
    # WHEN it reaches the store's translation THEN it is the 503 of refused credentials, logged
    translated = pytest.raises(
        DatabaseRefusedError, match=r"^the users store refused the credentials$"
    )
    with translated, database_errors("users", unconnected["users"]):
        raise refused
    assert [r.getMessage() for r in caplog.records] == [
        "MongoDB refused the credentials (bad auth : Authentication failed.: code 8000 "
        "AtlasError), first at the users store's request: check the user name and password in "
        "MONGODB_URI (percent-escaped) and the database the user was created in (authSource, "
        "else the URI's database)"
    ]


def test_other_driver_errors_are_not_disguised_as_outages(unconnected: Database[Document]) -> None:
    with pytest.raises(DuplicateKeyError), database_errors("users", unconnected):
        raise DuplicateKeyError("dup")
    with pytest.raises(OperationFailure), database_errors("users", unconnected):
        raise OperationFailure("Unsupported mechanism", 2)
