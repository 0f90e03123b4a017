"""Ids, timestamps and safe JSON objects shared by the repositories (no network)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, ServerSelectionTimeoutError

from lucid.errors import ServiceUnavailableError
from lucid.store.documents import (
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


@pytest.mark.parametrize("error", [ServerSelectionTimeoutError("x"), AutoReconnect("x")])
def test_outages_become_service_unavailable(error: Exception) -> None:
    outage = pytest.raises(ServiceUnavailableError, match="the sessions store is unavailable")
    with outage, database_errors("sessions"):
        raise error


def test_other_driver_errors_are_not_disguised_as_outages() -> None:
    with pytest.raises(DuplicateKeyError), database_errors("users"):
        raise DuplicateKeyError("dup")
