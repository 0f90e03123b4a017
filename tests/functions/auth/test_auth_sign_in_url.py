"""On a deployed stage with AuthServiceUrl left empty (the template's default), sign-in messages
name the API's own URL as API Gateway delivered the request (`requestContext.domainName` and the
named stage), never a loopback address; a message bound to another domain is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database

from lucid.config import Settings
from lucid.web.settings import current_settings
from tests.utils.events import Reply, http_event, reply_from
from tests.utils.functions import load_module
from tests.utils.wallets import Wallet

DOMAIN = "lucidapi01.execute-api.us-east-1.amazonaws.com"  # tests/events/http_api_v2_stage.json


@pytest.fixture
def deployed(database: Database[dict[str, Any]]) -> Iterator[None]:
    """The auth function with the settings of stage `dev` and AUTH_SERVICE_URL unset."""
    app = load_module("auth").app
    settings = Settings(STAGE="dev", AUTH_SERVICE_URL="")
    app.dependency_overrides[current_settings] = lambda: settings
    yield
    del app.dependency_overrides[current_settings]


def _post(path: str, body: dict[str, Any], stage: str = "dev") -> Reply:
    # As AWS sends it on a named stage: the stage in rawPath, the route key without it.
    event = http_event("POST", f"/{stage}{path}", route_key=f"POST {path}", body=body)
    event["requestContext"].update(stage=stage, domainName=DOMAIN)
    return reply_from(load_module("auth").handler(event, None))


@pytest.mark.usefixtures("deployed")
def test_a_deployed_stage_binds_messages_to_the_apis_own_url() -> None:
    # GIVEN stage dev deployed without AuthServiceUrl, reached at its execute-api URL /dev
    wallet = Wallet()
    # WHEN a wallet asks for a challenge
    challenge = _post("/auth/challenge", {"address": wallet.address})
    # THEN the message's domain and URI are the API's, with the stage it was called on
    assert challenge.status == 200, challenge.body
    message = challenge.body["message"]
    assert message.startswith(f"{DOMAIN} wants you to sign in with your TRON account:\n")
    assert f"\nURI: https://{DOMAIN}/dev\n" in message
    assert "127.0.0.1" not in message
    # AND the signed message signs in
    login = {"address": wallet.address, "message": message, "signature": wallet.sign(message)}
    assert _post("/auth/login", login).status == 200


@pytest.mark.usefixtures("deployed")
def test_a_message_for_the_loopback_domain_is_refused_on_a_deployed_stage() -> None:
    # GIVEN a message a phishing relay obtained for 127.0.0.1:8080 (the old default's domain)
    wallet = Wallet()
    message = _post("/auth/challenge", {"address": wallet.address}).body["message"]
    relayed = message.replace(DOMAIN, "127.0.0.1:8080", 1)
    # WHEN it is presented, signed, to the deployed stage
    body = {"address": wallet.address, "message": relayed, "signature": wallet.sign(relayed)}
    reply = _post("/auth/login", body)
    # THEN it is refused as a foreign message
    assert reply.status == 401
    assert reply.body["type"].endswith("/foreign-sign-in-message"), reply.body
