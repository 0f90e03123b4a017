"""The command set of the embedded MongoDB (`lucid_edge.local.mongo_server`), on mongomock.

`CommandBackend.run` takes a decoded command document and returns the reply MongoDB would send
(`{ok: 1, ...}`, or `{ok: 0, errmsg, code, codeName}`; unknown commands: 59 CommandNotFound).
Session, transaction and concern fields (lsid, txnNumber, $clusterTime, readConcern,
writeConcern, ...) are ignored: the backend runs one command at a time, applied immediately.
Transactions are refused (20 IllegalOperation), as a standalone MongoDB refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson.binary import Binary
from bson.int64 import Int64
from mongomock.filtering import filter_applies
from pymongo.errors import OperationFailure

from lucid.store.documents import Document
from lucid_edge.local import mongo_writes as writes
from lucid_edge.local.mongo_core import CommandError, Cursors, Request, sort_keys
from lucid_edge.local.mongo_index import Collections, indexed_client

logger = logging.getLogger("lucid_edge.local.mongo_server")

SERVER_VERSION = (6, 0, 0)
WIRE_VERSION = 17  # MongoDB 6.0; pymongo 4.10 needs at least 6
MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
MAX_WRITE_BATCH_SIZE = 100_000

_matches: Callable[[Document, Document], bool] = filter_applies


# wire name -> method name (the wire names are camelCase; the handshake has legacy spellings)
_COMMANDS = {
    "hello": "hello", "isMaster": "hello", "ismaster": "hello", "ping": "ping",
    "buildInfo": "build_info", "buildinfo": "build_info", "endSessions": "end_sessions",
    "listDatabases": "list_databases", "dropDatabase": "drop_database",
    "listCollections": "list_collections", "create": "create", "drop": "drop",
    "insert": "insert", "update": "update", "delete": "delete",
    "findAndModify": "find_and_modify", "findandmodify": "find_and_modify",
    "find": "find", "getMore": "get_more", "killCursors": "kill_cursors",
    "aggregate": "aggregate", "count": "count", "distinct": "distinct",
    "createIndexes": "create_indexes", "listIndexes": "list_indexes",
    "dropIndexes": "drop_indexes", "saslStart": "sasl_start", "saslContinue": "sasl_continue",
}  # fmt: skip
# What a mongod with authorization on answers before sign-in (each command's requiresAuth() is
# false); any other command is refused there (`CommandBackend.requires_auth`).
_BEFORE_SIGN_IN = {
    "hello", "isMaster", "ismaster", "ping", "buildInfo", "buildinfo", "saslStart", "saslContinue"
}  # fmt: skip
# The mechanisms a mongod offers on a database other than $external (SCRAM; PLAIN and GSSAPI
# are $external or Enterprise only): any other is refused before a conversation starts.
_SCRAM = ("SCRAM-SHA-1", "SCRAM-SHA-256")
# Where `users` are created: a URI naming no database and no authSource signs in there.
USERS_DATABASE = "admin"
SCRAM_ITERATIONS = 15000  # mongod's default scramSHA256IterationCount


@dataclass
class _Conversation:
    """A SCRAM-SHA-256 sign-in after its first step (RFC 5802 section 3, RFC 7677)."""

    id: int
    user: str
    auth_message: bytes  # client-first-message-bare "," server-first-message (",": the final)
    nonce: bytes
    salted_password: bytes


@dataclass
class CommandBackend:
    """Runs decoded commands against one in-memory mongomock store (with indexes: see
    `lucid_edge.local.mongo_index`), one at a time."""

    client: Any = field(default_factory=indexed_client)
    cursors: Cursors = field(default_factory=Cursors)
    max_message_size: int = MAX_MESSAGE_SIZE
    # As a mongod started with authorization on: on a connection not signed in as one of
    # `users` (`sasl_start`), every command but the handshake's is refused, 13 Unauthorized
    # "Command <name> requires authentication" (mongodb/mongo src/mongo/db/commands.cpp,
    # checkAuthorizationImplPreParse): what a MONGODB_URI naming no user meets on such a server.
    requires_auth: bool = False
    # Users that can sign in (SCRAM-SHA-256, created in USERS_DATABASE): name -> password. A
    # connection that signed in as one passes `requires_auth`; none: every sign-in fails (18).
    users: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.collections = Collections(self.client)
        self._signed_in: set[int] = set()
        self._conversations: dict[int, _Conversation] = {}

    def run(self, command: Document, database: str, connection_id: int) -> Document:
        """The reply document to `command` on `database`; never raises."""
        name = next(iter(command), "")
        if name not in _COMMANDS:
            return CommandError(59, f"no such command: '{name}'").reply()
        if (
            self.requires_auth
            and name not in _BEFORE_SIGN_IN
            and connection_id not in self._signed_in
        ):
            return CommandError(13, f"Command {name} requires authentication").reply()
        if "autocommit" in command:  # applying a transaction's writes one by one would lie
            return CommandError(
                20, "Transaction numbers are only allowed on a replica set member or mongos"
            ).reply()
        handler: Callable[[Request], Document] = getattr(self, _COMMANDS[name])
        try:
            refuse_collation(command)
            reply = handler(Request(name, command, database, connection_id))
        except CommandError as error:
            return error.reply()
        except OperationFailure as error:
            return CommandError.from_failure(error).reply()
        except NotImplementedError as error:  # what mongomock raises for a feature it lacks
            return CommandError(238, f"not supported by the embedded MongoDB: {error}").reply()
        except (ValueError, TypeError, KeyError) as error:
            return CommandError(2, f"{type(error).__name__}: {error}").reply()
        except Exception:
            logger.exception("embedded MongoDB command %r failed", name)
            return CommandError(1, f"internal error of the embedded MongoDB in {name}").reply()
        reply.setdefault("ok", 1.0)
        return reply

    def _collection(self, request: Request) -> Any:
        if not isinstance(request.target, str) or not request.target:
            raise CommandError(73, f"{request.name} needs a collection name")
        return self.collections.get(request.database, request.target)

    def _exists(self, request: Request) -> bool:
        return request.target in self.client[request.database].list_collection_names()

    def _existing_collection(self, request: Request) -> Any:
        collection = self._collection(request)
        if not self._exists(request):
            raise CommandError(26, f"ns does not exist: {request.namespace}")
        return collection

    def _cursor_reply(
        self, namespace: str, documents: list[Document], request: Request, single: bool = False
    ) -> Document:
        batch_size = request.command.get(
            "batchSize", (request.command.get("cursor") or {}).get("batchSize")
        )
        cursor_id, batch = self.cursors.open(namespace, documents, batch_size, single)
        return {"cursor": {"firstBatch": batch, "id": Int64(cursor_id), "ns": namespace}}

    # --- handshake and server ---------------------------------------------------------------

    def hello(self, request: Request) -> Document:
        """The handshake: a writable standalone, no topologyVersion (so no streaming monitor)."""
        primary_field = "isWritablePrimary" if request.name == "hello" else "ismaster"
        reply: Document = {}
        # A mongod names the mechanisms of a user it has ("<db>.<user>"), nothing for another
        # (src/mongo/db/auth/sasl_mechanism_registry.cpp, advertiseMechanismNamesForUser).
        if request.command.get("saslSupportedMechs") in {
            f"{USERS_DATABASE}.{user}" for user in self.users
        }:
            reply["saslSupportedMechs"] = ["SCRAM-SHA-256"]
        return reply | {
            "helloOk": True,
            primary_field: True,
            "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
            "maxMessageSizeBytes": self.max_message_size,
            "maxWriteBatchSize": MAX_WRITE_BATCH_SIZE,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": request.connection_id,
            "minWireVersion": 0,
            "maxWireVersion": WIRE_VERSION,
            "readOnly": False,
        }

    def ping(self, request: Request) -> Document:
        """Liveness."""
        return {}

    def sasl_start(self, request: Request) -> Document:
        """Sign-in, as a mongod answers it: SCRAM-SHA-256 as one of `users` starts a
        conversation (`sasl_continue` ends it); credentials of any other user are refused,
        never ignored.

        mongodb/mongo src/mongo/db/auth/sasl_commands.cpp (`doSaslStep`): a step that fails
        (here: the user is not found) answers only `authenticationFailedStatus`, that is
        18 AuthenticationFailed "Authentication failed." ("All the client needs to know is that
        authentication has failed"); `getServerMechanism` refuses a mechanism the database does
        not offer with BadValue (sasl_mechanism_registry.cpp). Before this, pymongo's saslStart
        got 59 CommandNotFound, an answer no real server gives. The handshake needs nothing
        more: for an unknown user `hello` carries no `saslSupportedMechs`
        (`advertiseMechanismNamesForUser` returns early) and a failed `speculativeAuthenticate`
        is left out ("Treat failure like we never even got a speculative start"), as `hello`
        here does, so pymongo falls back to saslStart with SCRAM-SHA-1.
        """
        mechanism = request.command.get("mechanism")
        if mechanism not in _SCRAM:
            raise CommandError(
                2,
                f"Unsupported mechanism '{mechanism}' on authentication database "
                f"'{request.database}'",
            )
        # RFC 5802 client-first-message: gs2-header "n,," then "n=<user>,r=<client nonce>".
        payload = bytes(request.command.get("payload") or b"")
        fields = dict(part.split(b"=", 1) for part in payload[3:].split(b",") if b"=" in part)
        user = fields.get(b"n", b"").decode(errors="replace")
        password = self.users.get(user)
        if (
            mechanism != "SCRAM-SHA-256"
            or request.database != USERS_DATABASE
            or password is None
            or not payload.startswith(b"n,,")
            or b"r" not in fields
        ):
            raise CommandError(18, "Authentication failed.")
        salt = os.urandom(16)
        nonce = fields[b"r"] + base64.b64encode(os.urandom(18))
        server_first = b"r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt), SCRAM_ITERATIONS)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
        conversation = _Conversation(
            len(self._conversations) + 1, user, payload[3:] + b"," + server_first, nonce, salted
        )
        self._conversations[request.connection_id] = conversation
        return {"conversationId": conversation.id, "done": False, "payload": Binary(server_first)}

    def sasl_continue(self, request: Request) -> Document:
        """The second SCRAM-SHA-256 step: the client's proof checked, the server's signature
        (RFC 5802 section 3); the connection is then signed in. Any failure: 18, as mongod."""
        conversation = self._conversations.pop(request.connection_id, None)
        payload = bytes(request.command.get("payload") or b"")
        without_proof, _, proof = payload.rpartition(b",p=")
        if conversation is None or without_proof != b"c=biws,r=" + conversation.nonce:
            raise CommandError(18, "Authentication failed.")
        auth_message = conversation.auth_message + b"," + without_proof
        salted = conversation.salted_password
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        try:
            claimed = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        except ValueError:
            raise CommandError(18, "Authentication failed.") from None
        if not hmac.compare_digest(hashlib.sha256(claimed).digest(), stored_key):
            raise CommandError(18, "Authentication failed.")
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        verifier = base64.b64encode(hmac.digest(server_key, auth_message, "sha256"))
        self._signed_in.add(request.connection_id)
        return {
            "conversationId": conversation.id,
            "done": True,
            "payload": Binary(b"v=" + verifier),
        }

    def end_sessions(self, request: Request) -> Document:
        """Sessions carry no server state here."""
        return {}

    def build_info(self, request: Request) -> Document:
        """The version this server claims to be."""
        return {
            "version": ".".join(map(str, SERVER_VERSION)),
            "versionArray": [*SERVER_VERSION, 0],
            "gitVersion": "mongomock",
            "bits": 64,
            "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
        }

    # --- databases and collections ----------------------------------------------------------

    def list_databases(self, request: Request) -> Document:
        """Databases that hold at least one collection."""
        infos = [
            {"name": name, "sizeOnDisk": 0, "empty": False}
            for name in self.client.list_database_names()
        ]
        infos = [info for info in infos if _matches(request.command.get("filter") or {}, info)]
        if request.command.get("nameOnly"):
            infos = [{"name": info["name"]} for info in infos]
        return {"databases": infos, "totalSize": 0}

    def drop_database(self, request: Request) -> Document:
        """Drop every collection of the database."""
        self.client.drop_database(request.database)
        return {}

    def list_collections(self, request: Request) -> Document:
        """Collections of the database as a cursor, filtered like MongoDB's (name, type, ...)."""
        infos = [
            {
                "name": name,
                "type": "collection",
                "options": {},
                "info": {"readOnly": False},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            }
            for name in sorted(self.client[request.database].list_collection_names())
        ]
        infos = [info for info in infos if _matches(request.command.get("filter") or {}, info)]
        if request.command.get("nameOnly"):
            infos = [{"name": info["name"], "type": info["type"]} for info in infos]
        return self._cursor_reply(f"{request.database}.$cmd.listCollections", infos, request)

    def create(self, request: Request) -> Document:
        """Create a collection (options such as capped are accepted and ignored)."""
        self._collection(request)
        if self._exists(request):
            raise CommandError(48, f"Collection {request.namespace} already exists.")
        self.client[request.database].create_collection(request.target)
        return {}

    def drop(self, request: Request) -> Document:
        """Drop a collection with its indexes."""
        collection = self._existing_collection(request)
        indexes = len(collection.index_information())
        collection.drop()
        return {"ns": request.namespace, "nIndexesWas": indexes}

    # --- writes (lucid_edge.local.mongo_writes) ------------------------------------------

    def insert(self, request: Request) -> Document:
        """Insert `documents`."""
        return writes.insert(self._collection(request), request)

    def update(self, request: Request) -> Document:
        """Apply `updates` statements."""
        return writes.update(self._collection(request), request)

    def delete(self, request: Request) -> Document:
        """Apply `deletes` statements."""
        return writes.delete(self._collection(request), request)

    def find_and_modify(self, request: Request) -> Document:
        """Change or remove one document atomically."""
        return writes.find_and_modify(self._collection(request), request)

    # --- reads ------------------------------------------------------------------------------

    def find(self, request: Request) -> Document:
        """filter, sort, projection, skip, limit, batchSize, singleBatch; answered as a cursor."""
        command = request.command
        limit = int(command.get("limit", 0))
        collection = self._collection(request)
        query = command.get("filter") or {}
        projection = command.get("projection") or None
        skip = int(command.get("skip", 0))
        single = bool(command.get("singleBatch")) or limit < 0
        documents = None
        included = None if projection is None else included_fields(projection)
        if (projection is None or included) and skip == 0 and isinstance(query, dict) and single:
            # A read by `_id` (every find_one): the stored document, encoded in this reply's
            # only batch, without mongomock's copy (mongo_index.IndexedCollection).
            documents = collection.stored_matches(query)
            if documents is not None and included:
                documents = [
                    {key: value for key, value in document.items() if key in included}
                    for document in documents
                ]
        if documents is None:
            documents = list(
                collection.find(
                    query, projection=projection, skip=skip, limit=abs(limit), sort=request.sort()
                )
            )
        return self._cursor_reply(request.namespace, documents, request, single)

    def aggregate(self, request: Request) -> Document:
        """A collection pipeline, answered as a cursor."""
        if not isinstance(request.target, str):
            raise CommandError(
                238, "database-level aggregate is not supported by the embedded MongoDB"
            )
        pipeline = request.command.get("pipeline", [])
        for stage in pipeline:
            if isinstance(stage, dict) and isinstance(stage.get("$sort"), dict):
                if not stage["$sort"]:
                    raise CommandError(15976, "$sort stage must have at least one sort key")
                stage["$sort"] = dict(sort_keys(stage["$sort"]))
        documents = list(self._collection(request).aggregate(pipeline))
        return self._cursor_reply(request.namespace, documents, request)

    def get_more(self, request: Request) -> Document:
        """The next batch of an open cursor (batchSize absent: all that fit one message)."""
        cursor_id = int(request.target)
        cursor = self.cursors.get(cursor_id)
        if cursor is None:
            raise CommandError(43, f"cursor id {cursor_id} not found")
        batch = cursor.take(request.command.get("batchSize") or None)
        if cursor.exhausted:
            self.cursors.close(cursor_id)
            cursor_id = 0
        return {"cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": cursor.namespace}}

    def kill_cursors(self, request: Request) -> Document:
        """Close cursors by id."""
        ids = [int(cursor_id) for cursor_id in request.command.get("cursors", [])]
        killed = [cursor_id for cursor_id in ids if self.cursors.close(cursor_id)]
        return {
            "cursorsKilled": [Int64(cursor_id) for cursor_id in killed],
            "cursorsNotFound": [Int64(cursor_id) for cursor_id in ids if cursor_id not in killed],
            "cursorsAlive": [],
            "cursorsUnknown": [],
        }

    def count(self, request: Request) -> Document:
        """Count matching documents (query, skip, limit)."""
        command = request.command
        options = {key: int(command[key]) for key in ("skip", "limit") if command.get(key)}
        return {
            "n": self._collection(request).count_documents(command.get("query") or {}, **options)
        }

    def distinct(self, request: Request) -> Document:
        """Distinct values of `key` among matching documents."""
        query = request.command.get("query") or None
        return {"values": list(self._collection(request).distinct(request.command["key"], query))}

    # --- indexes ----------------------------------------------------------------------------

    def create_indexes(self, request: Request) -> Document:
        """Create indexes; the same spec twice is a no-op, a conflict with an existing index is
        refused as MongoDB refuses it (`_refuse_index_conflict`; mongomock would add it)."""
        collection = self._collection(request)
        existed = self._exists(request)
        if not existed:  # as MongoDB does; mongomock would drop it again with its last index
            self.client[request.database].create_collection(request.target)
        before = len(collection.index_information())
        for spec in request.command.get("indexes", []):
            _refuse_index_conflict(collection.index_information(), spec)
            options = {key: value for key, value in spec.items() if key not in ("key", "v")}
            try:
                collection.create_index(list(spec["key"].items()), **options)
            except OperationFailure as error:
                raise CommandError.from_failure(error, default_code=85) from error
        return {
            "createdCollectionAutomatically": not existed,
            "numIndexesBefore": before,
            "numIndexesAfter": len(collection.index_information()),
        }

    def list_indexes(self, request: Request) -> Document:
        """The collection's indexes, as a cursor."""
        indexes = list(self._existing_collection(request).list_indexes())
        return self._cursor_reply(request.namespace, indexes, request)

    def drop_indexes(self, request: Request) -> Document:
        """Drop one index (by name or key), a list of names, or "*" (all but _id_)."""
        collection = self._existing_collection(request)
        before = len(collection.index_information())
        index = request.command.get("index")
        if index == "*":
            collection.drop_indexes()
            return {"nIndexesWas": before}
        try:
            for name in index if isinstance(index, list) else [index]:
                collection.drop_index(list(name.items()) if isinstance(name, dict) else name)
        except OperationFailure as error:
            raise CommandError(27, str(error)) from error
        return {"nIndexesWas": before}


def included_fields(projection: Any) -> frozenset[str] | None:
    """The top-level fields a plain inclusion projection keeps (`{a: 1, b: true}`, with `_id`
    unless it says `_id: 0`), or None for any other projection, which mongomock applies.

    The document keeps its own order, `_id` first, as MongoDB answers an inclusion projection
    (mongomock moves `_id` last; a dict compares equal either way)."""
    if not isinstance(projection, dict):
        return None
    keep_id = True
    fields = set()
    for name, value in projection.items():
        if type(value) not in (int, bool) or value not in (0, 1):
            return None
        if name == "_id":
            keep_id = bool(value)
        elif value != 1 or name[:1] == "$" or "." in name:
            return None
        else:
            fields.add(name)
    if not fields and not keep_id:
        return None  # `{_id: 0}` alone excludes
    if keep_id:
        fields.add("_id")
    return frozenset(fields)


# What tells two indexes on one key pattern apart (their signature) on MongoDB 5.0+ (FCV 4.9+):
# unique, sparse, partialFilterExpression and collation (mongodb/mongo
# src/mongo/db/index/index_descriptor.cpp `IndexDescriptor::compareIndexOptions`; collation is
# refused here, `_refuse_collation`). The partial filter is compared as a document, where mongod
# compares the parsed filters. Any other option (expireAfterSeconds, hidden, ...) only makes
# an index "equivalent" to one with the same signature, never a distinct one.
_FLAGS = ("unique", "sparse")
_NOT_OPTIONS = ("name", "key", "v", "ns", "background", *_FLAGS, "partialFilterExpression")


def _compare_index(spec: Document, existing: Document) -> str:
    """`different`, `equivalent` or `identical`, as `compareIndexOptions` answers."""
    if list(dict(spec["key"]).items()) != [tuple(pair) for pair in existing["key"]]:
        return "different"
    if any(bool(spec.get(flag)) != bool(existing.get(flag)) for flag in _FLAGS):
        return "different"
    if spec.get("partialFilterExpression") != existing.get("partialFilterExpression"):
        return "different"

    def others(index: Document) -> Document:
        return {key: value for key, value in index.items() if key not in _NOT_OPTIONS}

    return "identical" if others(spec) == others(existing) else "equivalent"


def _refuse_index_conflict(existing: dict[str, Document], spec: Document) -> None:
    """Refuse `spec` where mongod refuses it against the `existing` indexes (mongodb/mongo
    src/mongo/db/catalog/index_catalog_impl.cpp `IndexCatalogImpl::_doesSpecConflictWithExisting`):

    - its name taken by an index with another signature: 86 IndexKeySpecsConflict;
    - its name taken by an index with its signature but other options: 85 IndexOptionsConflict;
    - its signature held by an index of another name: 85 IndexOptionsConflict ("Index already
      exists with a different name", or "An equivalent index ... different name and options"),
      which on a real server is every cold start's `create_indexes` failing once someone made
      the same index by hand (`address_1`).

    The same name and signature with the same options is a no-op; the same key pattern with
    another signature under another name is a second index (a unique and a plain index on one
    field, say). mongomock refused only some of these (85 for all of them) and took the rest.
    """
    name = spec.get("name")
    if name in existing:
        comparison = _compare_index(spec, existing[name])
        if comparison == "different":
            raise CommandError(
                86,
                "An existing index has the same name as the requested index. Requested index: "
                f"{spec}, existing index: {existing[name]}",
            )
        if comparison == "equivalent":
            raise CommandError(
                85,
                "An equivalent index already exists with the same name but different options. "
                f"Requested index: {spec}, existing index: {existing[name]}",
            )
        return
    for other_name, other in existing.items():
        comparison = _compare_index(spec, other)
        if comparison == "equivalent":
            raise CommandError(
                85,
                "An equivalent index already exists with a different name and options. "
                f"Requested index: {spec}, existing index: {other}",
            )
        if comparison == "identical":
            raise CommandError(85, f"Index already exists with a different name: {other_name}")


def refuse_collation(command: Document) -> None:
    """Refuse a command that asks for a collation (on the command, one of its update or delete
    statements, or an index it creates): 238 NotImplemented. mongomock ignores collation, so a
    find or an index would silently compare strings as bytes where a server with that
    collation would not (a case-insensitive unique index, refusing what it takes). The
    gateway asks for none: a collation here is a new use, which needs a real server."""
    refused = "collation" in command
    for statements in _STATEMENTS:
        if refused:
            break
        listed = command.get(statements)
        if listed:
            refused = any(isinstance(part, dict) and "collation" in part for part in listed)
    if refused:
        raise CommandError(
            238, "collation is not implemented by the embedded MongoDB (the gateway uses none)"
        )


_STATEMENTS = ("updates", "deletes", "indexes")
