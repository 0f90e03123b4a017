"""The edge's authorizer decision cache: per authorizer and identity, for the TTL, bounded.

The edge's `Authorizers` is driven as the edge's proxy drives it; the authorizer function it
invokes is a small coroutine answering a simple response (the thing under test is the cache,
not the function, whose own tests are tests/functions/authorizer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from lucid_edge.authorizer import Authorizers
from lucid_edge.instances import ClientGoneError
from lucid_edge.model import AuthorizerSpec

T = TypeVar("T")
# Distinct identities the edge keeps decisions for (a worker process's memory bound).
MAX_CACHED_DECISIONS = 10_000  # lucid_edge.authorizer.MAX_CACHED_DECISIONS
ARN = "arn:aws:execute-api:us-east-1:123456789012:api/test/GET/items"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()  # private: asyncio.run would unset the main thread's loop
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def spec(name: str, ttl_seconds: int) -> AuthorizerSpec:
    return AuthorizerSpec(name, f"{name}Function", ("authorization",), (), ttl_seconds, True)


class Authorizer:
    """The authorizer function: records which identity it was asked; denies a token "deny",
    crashes on "crash", outlives its client on "gone" and allows any other."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, function: str, event: dict[str, Any], seconds: float) -> Any:
        token = event["identitySource"][0]
        self.asked.append((function, token))
        if token == "crash":
            raise RuntimeError("the authorizer crashed")
        if token == "gone":
            raise ClientGoneError  # the client hung up while the authorizer ran
        return {"isAuthorized": token != "deny", "context": {"asked": len(self.asked)}}


def request(token: str) -> dict[str, Any]:
    return {"headers": {"authorization": token}, "requestContext": {}}


def authorize(authorizers: Authorizers, name: str, token: str, call: Authorizer) -> Any:
    error, context = run(authorizers.authorize(name, request(token), ARN, call))
    assert error is None
    return context


def test_a_decision_is_reused_for_its_ttl_per_authorizer_and_identity_then_asked_again() -> None:
    # GIVEN two authorizers caching for 1 s, and one that does not cache
    authorizers = Authorizers({"A": spec("A", 1), "B": spec("B", 1), "N": spec("N", 0)})
    call = Authorizer()
    # WHEN the same identity is authorized twice by each, and another identity once by A
    first = authorize(authorizers, "A", "t-1", call)
    assert authorize(authorizers, "A", "t-1", call) == first
    authorize(authorizers, "A", "t-2", call)
    authorize(authorizers, "B", "t-1", call)
    authorize(authorizers, "B", "t-1", call)
    authorize(authorizers, "N", "t-1", call)
    authorize(authorizers, "N", "t-1", call)
    # THEN each authorizer was asked once per identity, except the one without a cache
    assert call.asked == [
        ("AFunction", "t-1"),
        ("AFunction", "t-2"),
        ("BFunction", "t-1"),
        ("NFunction", "t-1"),
        ("NFunction", "t-1"),
    ]
    # AND once the TTL is over the authorizer is asked again
    time.sleep(1.05)
    assert authorize(authorizers, "A", "t-1", call) != first
    assert call.asked[-1] == ("AFunction", "t-1")


def test_the_cache_holds_decisions_for_at_most_10_000_identities() -> None:
    # GIVEN as many distinct identities as the cache holds, each authorized once
    authorizers = Authorizers({"A": spec("A", 300)})
    call = Authorizer()
    for n in range(MAX_CACHED_DECISIONS):
        authorize(authorizers, "A", f"t-{n}", call)
    # WHEN the first comes back THEN its decision is still cached
    authorize(authorizers, "A", "t-0", call)
    assert len(call.asked) == MAX_CACHED_DECISIONS
    # WHEN one identity more is authorized THEN the cache made room (it is emptied: identities
    # are client-chosen, so memory must not grow with them) and the first is asked again
    authorize(authorizers, "A", "t-new", call)
    authorize(authorizers, "A", "t-0", call)
    assert call.asked[-2:] == [("AFunction", "t-new"), ("AFunction", "t-0")]


def test_a_request_without_its_identity_source_is_401_and_never_asks_the_authorizer() -> None:
    authorizers = Authorizers({"A": spec("A", 300)})
    call = Authorizer()
    missing: dict[str, Any] = {"headers": {}, "requestContext": {}}
    for event in (request(""), missing):  # an empty value counts as missing
        error, context = run(authorizers.authorize("A", event, ARN, call))
        assert error is not None
        assert (error.status, context) == (401, None)
    assert call.asked == []


def test_a_deny_is_403_and_cached_an_error_is_500_and_never_cached_as_the_metrics_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[str] = []
    authorizers = Authorizers({"A": spec("A", 300)}, lambda name, outcome: outcomes.append(outcome))
    call = Authorizer()
    answers = []
    with caplog.at_level(logging.ERROR, logger="lucid_edge.authorizer"):
        for token in ("deny", "deny", "crash", "crash", "ok", "ok"):
            event = request(token)
            error, _ = run(authorizers.authorize("A", event, ARN, call))
            answers.append(
                (error.status if error else 200, "authorizer" in event["requestContext"])
            )
    assert answers == [(403, False)] * 2 + [(500, False)] * 2 + [(200, True)] * 2
    assert [token for _, token in call.asked] == ["deny", "crash", "crash", "ok"]
    assert outcomes == ["miss", "hit", "miss", "error", "miss", "error", "miss", "hit"]
    assert caplog.messages == ["authorizer A failed"] * 2


def test_a_client_gone_while_the_authorizer_runs_is_passed_on_unanswered_and_uncached() -> None:
    outcomes: list[str] = []
    authorizers = Authorizers({"A": spec("A", 300)}, lambda name, outcome: outcomes.append(outcome))
    call = Authorizer()
    for _ in range(2):
        with pytest.raises(ClientGoneError):
            run(authorizers.authorize("A", request("gone"), ARN, call))
    assert (len(call.asked), outcomes) == (2, ["miss", "miss"])
