"""Fixtures of the layer's data tests: a fresh in-memory database, and one whose server is down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database

from lucid.config import Settings
from lucid.store.mongo import build_database
from lucid_edge.local import free_port, in_memory_database

Db = Database[dict[str, Any]]


@pytest.fixture
def db() -> Db:
    return in_memory_database()


@pytest.fixture
def dead_db() -> Iterator[Db]:
    database = build_database(
        Settings(MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}", MONGODB_TIMEOUT_MS=100)
    )
    yield database
    database.client.close()
