"""Drive the real auth and authorizer handlers with payload 2.0 events, as API Gateway does."""

from __future__ import annotations

import uuid
from typing import Any

from tests.utils.events import Reply, http_event, lambda_context, reply_from
from tests.utils.functions import load_handler
from tests.utils.redact import shown
from tests.utils.wallets import Wallet


def call_auth(
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
    source_ip: str = "198.51.100.7",
) -> Reply:
    """Invoke functions/auth with one event (`context`: the authorizer's lambda context)."""
    event = http_event(
        method, path, body=body, headers=headers, authorizer=context, source_ip=source_ip
    )
    return reply_from(load_handler("auth")(event, lambda_context("auth")))


def authorizer_event(authorization: str | None, route_key: str = "GET /users/me") -> dict[str, Any]:
    """A REQUEST authorizer event (payload 2.0) carrying `authorization` as its header."""
    method, path = route_key.split(" ", 1)
    headers = {"host": "api.lucid.test", "user-agent": "pytest"}
    if authorization is not None:
        headers["authorization"] = authorization
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": f"arn:aws:execute-api:us-east-1:123456789012:lucidapi01/local/{method}{path}",
        "identitySource": [authorization] if authorization is not None else [],
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "lucidapi01",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.7", "userAgent": "pytest"},
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": route_key,
            "stage": "local",
        },
    }  # fmt: skip


def authorize(access_token: str | None) -> dict[str, Any]:
    """The real authorizer's answer for `Authorization: Bearer <access_token>`."""
    header = None if access_token is None else f"Bearer {access_token}"
    event = authorizer_event(header)
    result: dict[str, Any] = load_handler("authorizer")(event, lambda_context("authorizer"))
    return result


def sign_in(wallet: Wallet, source_ip: str = "198.51.100.7") -> dict[str, Any]:
    """Challenge, sign (signMessageV2) and log in through the auth handler; the token pair."""
    challenge = call_auth(
        "POST", "/auth/challenge", body={"address": wallet.address}, source_ip=source_ip
    )
    assert challenge.status == 200, shown(challenge)
    message = challenge.body["message"]
    login = call_auth(
        "POST",
        "/auth/login",
        body={"address": wallet.address, "message": message, "signature": wallet.sign(message)},
        source_ip=source_ip,
    )
    assert login.status == 200, shown(login)
    pair: dict[str, Any] = login.body
    return pair
