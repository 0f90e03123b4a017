"""`lucid db init`: create the MongoDB indexes the gateway relies on, and drop the ones earlier
releases made that nothing reads any more (idempotent).

Functions also create them on their first request after a cold start; running this once at
deploy time means no request ever pays for it and a unique index exists before any write.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from lucid.config import UriNotSetError
from lucid.errors import ServiceUnavailableError
from lucid.store.documents import DatabaseRefusedError
from lucid.store.indexes import IndexConflictError, drop_retired_indexes, ensure_indexes
from lucid.store.mongo import get_database
from lucid.store.unusable import StoreUnusableError


def register(subparsers: Any) -> None:
    """Add the `db` subcommand group."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db", help="database maintenance (MONGODB_URI selects the server)"
    )
    actions = parser.add_subparsers(dest="db_command", required=True)
    init = actions.add_parser("init", help="create every index, drop retired ones (idempotent)")
    init.set_defaults(func=run_init)


def _said_here(record: logging.LogRecord) -> bool:
    return False


def _why(cause: BaseException | None) -> str:
    """pymongo's reason for a server it could not reach (`127.0.0.1:27017: [Errno 111]
    Connection refused`), without its timeouts and topology description."""
    reason = str(cause or "").split(" (configured timeouts", 1)[0].split(", Timeout: ", 1)[0]
    return f": {reason}" if reason else ""


def run_init(args: argparse.Namespace) -> int:
    """Create the indexes, drop retired ones, and say which exist per collection."""
    # The layer's ERROR lines (a refused URI: `lucid.store.unusable`; a server refusing the
    # user: `lucid.store.documents`) are for a function's log; this command says each itself
    # below, with pymongo's or the server's reason, in one line.
    store_log = logging.getLogger("lucid.store")
    store_log.addFilter(_said_here)
    try:
        return _init()
    finally:
        store_log.removeFilter(_said_here)


def _init() -> int:
    try:
        database = get_database()
    except StoreUnusableError as error:
        if isinstance(error.cause, UriNotSetError):  # there is no database to prepare
            print(f"lucid db init: {error.cause}", file=sys.stderr)
        else:
            # pymongo's InvalidURI / ValueError name what is wrong (an unescaped password, the
            # scheme, the port, the database name), not the URI or its credentials.
            print(
                f"lucid db init: MONGODB_URI is not a usable MongoDB URI: {error.cause}",
                file=sys.stderr,
            )
        return 2
    try:
        created = ensure_indexes(database)
        dropped = drop_retired_indexes(database)
    except DatabaseRefusedError as error:
        # The server refused the command: a password it does not take (18), a user without
        # createIndex on this database (13). Its own message names that, never the credentials.
        print(
            f"lucid db init: MongoDB refused it: {error.reason} (code {error.code})",
            file=sys.stderr,
        )
        return 1
    except ServiceUnavailableError as error:
        print(f"lucid db init: {error.detail}{_why(error.__cause__)}", file=sys.stderr)
        return 1
    except IndexConflictError as error:
        print(f"lucid db init: {error}", file=sys.stderr)
        return 1
    for collection, names in created.items():
        print(f"{database.name}.{collection}: {', '.join(names)}")
    for name in dropped:
        print(f"dropped {database.name}.{name} (no longer used)")
    return 0
