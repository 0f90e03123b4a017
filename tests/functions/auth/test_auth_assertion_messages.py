"""A shared test helper that fails on an answer holding tokens prints none of them.

CI prints a failed check's message. The real auth function (Mangum handler, payload 2.0 events;
MongoDB the in-memory store, Redis the real test server) signs a wallet in and refreshes its
pair: the answer a test expecting a refusal would get if the refusal broke.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo.database import Database

from tests.e2e.flows import problem
from tests.utils.auth_flow import call_auth, sign_in
from tests.utils.events import Reply
from tests.utils.redact import MASK, shown
from tests.utils.wallets import Wallet


def refreshed(database: Database[dict[str, Any]]) -> tuple[dict[str, Any], Reply]:
    """A real sign-in's pair and the 200 answer to its refresh (a new pair)."""
    pair = sign_in(Wallet())
    reply = call_auth("POST", "/auth/refresh", body={"refresh_token": pair["refresh_token"]})
    assert reply.status == 200
    return pair, reply


def secrets_of(pair: dict[str, Any], reply: Reply) -> set[str]:
    return {
        pair["access_token"],
        pair["refresh_token"],
        reply.body["access_token"],
        reply.body["refresh_token"],
    }


def test_a_refresh_that_unexpectedly_succeeds_fails_the_check_without_its_tokens(
    database: Database[dict[str, Any]],
) -> None:
    # GIVEN a refresh that succeeded, as the e2e client receives it (a cookie holding one too)
    pair, reply = refreshed(database)
    response = httpx.Response(
        reply.status,
        headers={"set-cookie": f"refresh={pair['refresh_token']}; HttpOnly"},
        json=reply.body,
        request=httpx.Request("POST", "http://127.0.0.1/auth/refresh"),
    )
    # WHEN the e2e flows' problem check expects a 401
    with pytest.raises(AssertionError) as caught:
        problem(response, 401, "unauthorized")
    # THEN its message says what came back, with no token in it
    message = str(caught.value)
    assert message.startswith("200 ")
    assert "token_type" in message
    assert MASK in message
    assert not any(secret in message for secret in secrets_of(pair, reply))


def test_a_function_s_reply_is_shown_without_its_tokens(
    database: Database[dict[str, Any]],
) -> None:
    # GIVEN the auth function's reply holding a new pair, and a JWT echoed in a plain string
    pair, reply = refreshed(database)
    echoed = Reply(200, {"authorization": "Bearer " + pair["access_token"]}, reply.body)
    nested = Reply(400, {}, {"detail": f"bad token {pair['access_token']}", "items": [reply.body]})
    # WHEN each is shown, THEN none of the tokens is
    for shown_reply in (shown(reply), shown(echoed), shown(nested)):
        assert not any(secret in shown_reply for secret in secrets_of(pair, reply))
        assert MASK in shown_reply
