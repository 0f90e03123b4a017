"""The jti denylist in the real Redis."""

from __future__ import annotations

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lucid.auth.denylist import EXPIRY_MARGIN_SECONDS, KEY_PREFIX, deny_token, is_token_denied
from lucid.errors import ServiceUnavailableError
from lucid_edge.local import free_port


def test_denied_token_stays_denied_until_it_expires(redis_client: redis.Redis) -> None:
    # GIVEN a token that expires in 100 s WHEN it is denied
    deny_token(redis_client, "jti-1", int(time.time()) + 100)
    # THEN it is refused, others are not, and the entry dies after exp plus the leeway margin
    assert is_token_denied(redis_client, "jti-1")
    assert not is_token_denied(redis_client, "jti-2")
    ttl = redis_client.ttl(KEY_PREFIX + "jti-1")
    assert 100 <= ttl <= 100 + EXPIRY_MARGIN_SECONDS


def test_already_expired_token_still_gets_a_short_entry(redis_client: redis.Redis) -> None:
    deny_token(redis_client, "old", int(time.time()) - 3600)
    assert is_token_denied(redis_client, "old")
    assert redis_client.ttl(KEY_PREFIX + "old") >= 1


def test_redis_down_is_service_unavailable() -> None:
    client = redis.Redis(
        port=free_port(),
        socket_connect_timeout=0.05,
        socket_timeout=0.05,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        with pytest.raises(ServiceUnavailableError):
            is_token_denied(client, "x")
        with pytest.raises(ServiceUnavailableError):
            deny_token(client, "x", int(time.time()) + 10)
    finally:
        client.close()
