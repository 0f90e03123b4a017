"""The process's MongoDB database: built once per cold start from MONGODB_URI.

Always a pymongo client against the server MONGODB_URI names: no code change between a laptop,
the local edge's in-memory store and Atlas. The layer starts nothing itself: on one machine the
local edge (`make run`) or the test session serves an in-memory MongoDB and sets MONGODB_URI for
the functions (`lucid_edge.local`, not shipped to Lambda).
"""

from __future__ import annotations

import functools

import pymongo
from pymongo.database import Database
from pymongo.errors import ConfigurationError

from lucid.config import Settings, get_settings
from lucid.store import fast_reads
from lucid.store.documents import Document
from lucid.store.unusable import building_client


def build_database(settings: Settings) -> Database[Document]:
    """The database MONGODB_URI names (`mongodb://host/<database>`), else MONGODB_DATABASE's.

    The URI's database is the one its credentials and `authSource` were written for (pymongo
    authenticates against it when the URI sets no `authSource`), so a deployment works by
    setting MONGODB_URI alone; TLS (`mongodb+srv://` turns it on) and `retryWrites` (on by
    default) come from the URI as pymongo reads them. A StoreUnusableError (503) when
    MONGODB_URI names no server or one pymongo refuses (`lucid.store.unusable`).
    """
    # pymongo refuses a URI with a ConfigurationError (InvalidURI: an unescaped password,
    # another scheme; an SRV name that does not resolve) or a ValueError (a port out of range).
    with building_client("MONGODB_URI", (ConfigurationError, ValueError)):
        return _build_database(settings, settings.required_uri("MONGODB_URI"))


def _build_database(settings: Settings, uri: str) -> Database[Document]:
    timeout = settings.MONGODB_TIMEOUT_MS
    # `timeoutMS` (client-side operation timeout, pymongo 4.2+) bounds each operation as a
    # whole: server selection, connection, the server's own work (sent as maxTimeMS) and the
    # one retry of a retryable read or write. A socket timeout alone bounded each attempt, so a
    # server that stopped answering (a partition, a hung primary) held a request for two of
    # them (2 x 5 s: the whole 10 s Timeout of the authorizer and meta functions) before the
    # 503. Sources: pymongo's "Client Side Operation Timeout" page; the CSOT specification.
    client: pymongo.MongoClient[Document] = pymongo.MongoClient(
        uri,
        tz_aware=True,
        timeoutMS=timeout,
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        appname=settings.SERVICE_NAME,
    )
    fast_reads.configure(client, enabled=settings.MONGODB_FAST_READS)
    return client.get_default_database(default=settings.MONGODB_DATABASE)


@functools.cache
def get_database() -> Database[Document]:
    """The process's database (created on first use, then shared)."""
    return build_database(get_settings())
