"""Fixtures shared by the data-owning functions' tests: a fresh in-memory MongoDB (mongomock,
with writes made atomic as a real server's are) behind users and sessions, users A and B, an
admin, and a MongoDB client on a port where nothing listens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.config import Settings
from lucid.store.mongo import build_database
from lucid_edge.local import free_port
from tests.utils.datastore import User, add_user, atomic_writes, database_for


@pytest.fixture
def database(redis_client: redis.Redis) -> Iterator[Database[dict[str, Any]]]:
    """A fresh database behind the users and sessions functions (Redis flushed too)."""
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


@pytest.fixture
def dead_database() -> Iterator[Database[dict[str, Any]]]:
    """A real pymongo client whose server is down (200 ms server selection)."""
    settings = Settings(MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}", MONGODB_TIMEOUT_MS=200)
    database = build_database(settings)
    yield database
    database.client.close()
