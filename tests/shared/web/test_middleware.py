"""The outermost middleware reads what API Gateway vouches for once per request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from lucid.identity import CallerIdentity, caller_from_event
from lucid.store import resp
from lucid.web import middleware
from tests.shared.ratelimit.helpers import USER, function_app, invoke, limiter_for


def test_the_authorizer_context_is_read_from_the_event_once_per_request(
    monkeypatch: pytest.MonkeyPatch, store_redis: resp.Redis
) -> None:
    # GIVEN a function with the access log, the tiered rate limit and a route reading the facts
    reads: list[Mapping[str, Any] | None] = []

    def counted(event: Mapping[str, Any] | None) -> CallerIdentity | None:
        reads.append(event)
        return caller_from_event(event)

    monkeypatch.setattr(middleware, "caller_from_event", counted)
    handler = function_app(limiter_for(store_redis))
    # WHEN one signed-in request passes all three
    status, headers, _ = invoke(
        handler, "POST", "/auth/login", body={"address": "T1"}, authorizer=USER
    )
    # THEN it was counted at the caller's tier, and its event was parsed once
    assert status == 200
    assert headers["ratelimit-policy"] == '"authenticated";q=1000;w=60'
    assert len(reads) == 1
