"""The process's MongoDB database: built once per cold start from MONGODB_URI.

With MONGODB_URI set, a pymongo client against that server (no code change between a laptop and
Atlas). Unset on the local stage, an in-memory MongoDB-API store (mongomock) with a loud warning:
nothing is persisted, and each process has its own copy.
"""

from __future__ import annotations

import functools
import logging

import pymongo
from pymongo.database import Database

from lucid.config import Settings, get_settings
from lucid.store.documents import Document

logger = logging.getLogger("lucid.store.mongo")


def build_database(settings: Settings) -> Database[Document]:
    """The database named MONGODB_DATABASE on the client `settings` describe."""
    uri = settings.MONGODB_URI.get_secret_value() if settings.MONGODB_URI else None
    client: pymongo.MongoClient[Document]
    if uri is None:
        if not settings.is_local:
            raise RuntimeError(f"MONGODB_URI is required on stage {settings.STAGE!r}")
        import mongomock  # local stage only

        logger.warning(
            "MONGODB_URI is unset: using an IN-MEMORY MongoDB store; NOTHING IS PERSISTED "
            "and every process has its own data. Set MONGODB_URI to use a real server."
        )
        client = mongomock.MongoClient(tz_aware=True)
    else:
        timeout = settings.MONGODB_TIMEOUT_MS
        client = pymongo.MongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout,
            connectTimeoutMS=timeout,
            socketTimeoutMS=max(timeout, 5000),
            appname=settings.SERVICE_NAME,
        )
    return client[settings.MONGODB_DATABASE]


@functools.cache
def get_database() -> Database[Document]:
    """The process's database (created on first use, then shared)."""
    return build_database(get_settings())
