"""Test session wiring: one real embedded redis-server, a fixed test environment.

The environment is set here, before any test imports the layer, because the layer builds its
settings and clients once per process, exactly as in Lambda.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from lucid.embedded import EmbeddedRedis, start_redis

_REDIS: EmbeddedRedis = start_redis()

os.environ.update(
    {
        "STAGE": "local",
        "REDIS_URI": _REDIS.uri,
        "JWT_SECRET_KEY": "test-only-key-0123456789abcdef0123456789abcdef",
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "LucidTests",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Hundreds of requests per minute from one test user would trip the real limits; the
        # limiter's own tests build limiters with explicit settings, and the end-to-end rate
        # limit tests start an edge with limits on.
        "RATE_LIMIT_ENABLED": "false",
    }
)
for _name in ("MONGODB_URI", "BLOCKCHAIN_SERVICE_URL", "SESSION_SERVICE_URL", "NODE_SERVICE_URL"):
    os.environ.pop(_name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    _REDIS.stop()


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
