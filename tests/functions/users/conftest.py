"""Fixtures for the users function: a fresh mongomock database, users A and B, an admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pymongo.database import Database

from tests.utils.datastore import User, add_user, atomic_writes, database_for


@pytest.fixture
def database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    """A fresh in-memory MongoDB (mongomock, atomic writes) behind users and sessions."""
    with atomic_writes(), database_for("users", "sessions") as db:
        yield db


@pytest.fixture
def alice(database: Database[dict[str, Any]]) -> User:
    return add_user(database, display_name="Alice")


@pytest.fixture
def bob(database: Database[dict[str, Any]]) -> User:
    return add_user(database)


@pytest.fixture
def admin(database: Database[dict[str, Any]]) -> User:
    return add_user(database, role="admin")
