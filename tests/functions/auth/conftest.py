"""Fixtures for the auth function: the real Redis (flushed) and a fresh in-memory MongoDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pymongo.database import Database

from tests.utils.datastore import atomic_writes, database_for


@pytest.fixture
def database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    """A fresh mongomock database (atomic writes) behind the auth function."""
    with atomic_writes(), database_for("auth") as db:
        yield db
