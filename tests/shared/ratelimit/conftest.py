"""Fixtures of the rate-limit tests: the limiter's log, a Redis of the test's own."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lucid_edge.local import EmbeddedRedis
from tests.shared.ratelimit.helpers import RecordList
from tests.utils.tied import start_redis


@pytest.fixture
def ratelimit_log() -> Iterator[RecordList]:
    """Records of the "lucid.ratelimit" logger (once each, whatever "lucid" propagates to)."""
    logger = logging.getLogger("lucid.ratelimit")
    handler = RecordList()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server only this test uses, so the test may stop it."""
    server = start_redis()
    yield server
    server.stop()
