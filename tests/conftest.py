"""Test session wiring: one real embedded redis-server, one in-memory MongoDB served over the
wire protocol, and a fixed test environment.

Like the local edge, the session starts the local-only servers (`lucid_edge.local`) and hands
their URIs to the functions as REDIS_URI and MONGODB_URI: the layer only ever connects to a URI.
The environment is set here, before any test imports the layer, because the layer builds its
settings and clients once per process, exactly as in Lambda. End-to-end edges started in a
subprocess drop MONGODB_URI and start their own in-memory MongoDB, as `make run` does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from lucid.store import resp
from lucid_edge.local import EmbeddedMongo, EmbeddedRedis, start_mongo_server
from tests.utils.layer_redis import layer_redis
from tests.utils.session_dir import SessionDir
from tests.utils.tied import start_redis

# The session's files (the redis-server's working directory, LUCID_CONFIG_DIR below) are in one
# directory; what a session stopped by SIGKILL left, the next one removes (tests.utils.session_dir).
_SESSION = SessionDir.claim()
(_SESSION.path / "redis").mkdir()
# Tied to this process: a run stopped by SIGKILL leaves no redis-server behind (tests.utils.tied).
_REDIS: EmbeddedRedis = start_redis(data_dir=_SESSION.path / "redis")
_MONGO: EmbeddedMongo = start_mongo_server()

os.environ.update(
    {
        "STAGE": "local",
        "REDIS_URI": _REDIS.uri,
        "MONGODB_URI": _MONGO.uri,
        "JWT_SECRET_KEY": "test-only-key-0123456789abcdef0123456789abcdef",
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "LucidTests",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Hundreds of requests per minute from one test user would trip the real limits; the
        # limiter's own tests build limiters with explicit settings, and the end-to-end rate
        # limit tests start an edge with limits on.
        "RATE_LIMIT_ENABLED": "false",
        # The tests share two cores with the load they generate (and CI machines are shared):
        # production's 50 ms Redis bound turns a scheduling hiccup into a fallback or a 503.
        # Tests of what a slow or dead Redis does build their clients with 50 ms explicitly.
        "REDIS_TIMEOUT_MS": "500",
        # Likewise MongoDB's bound on each whole operation (2 s in production); tests of a dead
        # or hung MongoDB set theirs explicitly.
        "MONGODB_TIMEOUT_MS": "5000",
    }
)
for _name in ("BLOCKCHAIN_SERVICE_URL", "SESSION_SERVICE_URL", "NODE_SERVICE_URL", "LUCID_URL"):
    os.environ.pop(_name, None)
# The `lucid` command line's files (keys, credentials, the running gateway that `lucid serve`
# records): the suite's edges and CLI calls keep theirs apart from the user's ~/.config/lucid.
_CLI_CONFIG = _SESSION.path / "config"
_CLI_CONFIG.mkdir(mode=0o700)
os.environ["LUCID_CONFIG_DIR"] = str(_CLI_CONFIG)


def pytest_unconfigure(config: pytest.Config) -> None:
    from lucid.store.mongo import get_database

    if get_database.cache_info().currsize:  # the process's client, as a Lambda instance keeps it
        get_database().client.close()
    _REDIS.stop()
    _MONGO.stop()
    _SESSION.remove()


@pytest.fixture(scope="session")
def redis_server() -> EmbeddedRedis:
    """The session's real redis-server."""
    return _REDIS


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client on a flushed database: each test starts with empty Redis."""
    client = redis.Redis.from_url(redis_server.uri)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def store_redis(redis_client: redis.Redis, redis_server: EmbeddedRedis) -> Iterator[resp.Redis]:
    """The layer's own client (`lucid.store.resp`) on the flushed database of `redis_client`:
    what gateway code is given; `redis_client` (redis-py) looks at the server directly."""
    client = layer_redis(redis_server.uri)
    yield client
    client.close()
