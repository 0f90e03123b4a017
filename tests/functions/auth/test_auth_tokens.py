"""/auth/verify, /auth/refresh, /auth/logout and /auth/status through the real handlers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import jwt
import pytest
from pymongo.database import Database

from lucid.auth.keys import KeyRing
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.identity import Role
from tests.utils.auth_flow import authorize, call_auth, sign_in
from tests.utils.datastore import database_for
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.usefixtures("database")
PROBLEM = "https://lucid.dev/problems/"


def _verify(token: str) -> Any:
    return call_auth("POST", "/auth/verify", body={"token": token})


def _refresh(token: str) -> Any:
    return call_auth("POST", "/auth/refresh", body={"refresh_token": token})


def _status(authorization: str | None) -> dict[str, Any]:
    headers = {"authorization": authorization} if authorization is not None else None
    reply = call_auth("GET", "/auth/status", headers=headers)
    assert reply.status == 200
    body: dict[str, Any] = reply.body
    return body


def _logout(access_token: str) -> Any:
    decision = authorize(access_token)
    assert decision["isAuthorized"] is True
    return call_auth("POST", "/auth/logout", context=decision["context"])


def test_verify_returns_the_claims() -> None:
    wallet = Wallet()
    pair = sign_in(wallet)
    reply = _verify(pair["access_token"])
    assert reply.status == 200
    assert reply.body["addr"] == wallet.address
    assert reply.body["typ"] == "access"
    claims = {"iss", "aud", "sub", "role", "tier", "iat", "nbf", "exp", "jti", "sid"}
    assert claims <= reply.body.keys()


def test_verify_refuses_a_refresh_token_and_refresh_refuses_an_access_token() -> None:
    pair = sign_in(Wallet())
    as_access = _verify(pair["refresh_token"])
    assert (as_access.status, as_access.body["detail"]) == (401, "token is not a JWT")
    as_refresh = _refresh(pair["access_token"])
    assert (as_refresh.status, as_refresh.body["detail"]) == (401, "not a refresh token")


def test_verify_refuses_a_tampered_token() -> None:
    pair = sign_in(Wallet())
    header, _, signature = pair["access_token"].split(".")
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    claims["role"] = "admin"
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    reply = _verify(f"{header}.{forged_payload}.{signature}")
    assert (reply.status, reply.body["type"]) == (401, PROBLEM + "invalid-token")
    assert reply.body["detail"] == "token signature is invalid"


def test_refresh_rotates_and_reuse_revokes_the_family() -> None:
    # GIVEN a sign-in refreshed once
    pair = sign_in(Wallet())
    rotated = _refresh(pair["refresh_token"])
    assert rotated.status == 200
    assert rotated.body["refresh_token"] != pair["refresh_token"]
    assert _verify(rotated.body["access_token"]).status == 200
    # WHEN the old refresh token is presented again (a stolen copy)
    reused = _refresh(pair["refresh_token"])
    # THEN it is refused as reuse and the legitimate new one is dead too
    assert (reused.status, reused.body["type"]) == (401, PROBLEM + "refresh-token-reuse")
    after = _refresh(rotated.body["refresh_token"])
    assert (after.status, after.body["detail"]) == (401, "refresh token was revoked")


def test_two_concurrent_refreshes_exactly_one_succeeds() -> None:
    pair = sign_in(Wallet())
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def attempt() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            barrier.wait(timeout=10)
            statuses.append(_refresh(pair["refresh_token"]).status)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 401]


def test_logout_ends_the_sign_in_every_access_token_and_the_refresh_family() -> None:
    wallet = Wallet()
    pair = sign_in(wallet)
    rotated = _refresh(pair["refresh_token"]).body
    other_sign_in = sign_in(wallet)
    assert _logout(rotated["access_token"]).status == 204
    # the authorizer now refuses both access tokens of the sign-in, verify and status agree
    for token in (pair["access_token"], rotated["access_token"]):
        assert authorize(token) == {"isAuthorized": False}
        assert _verify(token).body["detail"] == "this sign-in was revoked"
        assert _status(f"Bearer {token}")["authenticated"] is False
    assert _refresh(rotated["refresh_token"]).body["detail"] == "refresh token was revoked"
    # the wallet's other sign-in goes on
    assert authorize(other_sign_in["access_token"])["isAuthorized"] is True
    # and logging out again does no harm (RFC 7009: revoking a revoked token is no error)
    context = authorize(other_sign_in["access_token"])["context"]
    assert call_auth("POST", "/auth/logout", context=context).status == 204
    assert call_auth("POST", "/auth/logout", context=context).status == 204


def test_logout_with_mongodb_down_is_503_and_revokes_nothing(
    dead_database: Database[dict[str, Any]],
) -> None:
    pair = sign_in(Wallet())
    context = authorize(pair["access_token"])["context"]
    with database_for("auth", database=dead_database):
        reply = call_auth("POST", "/auth/logout", context=context)
    assert reply.status == 503
    assert reply.headers["content-type"] == "application/problem+json"
    # the record was not written, so nothing is revoked: the client retries
    assert authorize(pair["access_token"])["isAuthorized"] is True
    assert _verify(pair["access_token"]).status == 200


def test_logout_without_authorizer_context_or_sign_in_is_401() -> None:
    reply = call_auth("POST", "/auth/logout")
    assert reply.status == 401
    context = authorize(sign_in(Wallet())["access_token"])["context"]
    reply = call_auth("POST", "/auth/logout", context={**context, "sid": ""})
    assert (reply.status, reply.body["detail"]) == (
        401,
        "the token names no sign-in; sign in again",
    )


def test_status_with_and_without_a_token(database: Database[dict[str, Any]]) -> None:
    wallet = Wallet()
    pair = sign_in(wallet)
    anonymous = {"authenticated": False, "user": None, "expires_at": None}
    assert _status(None) == anonymous
    assert _status("Basic dXNlcjpwYXNz") == anonymous
    assert _status("Bearer not-a-token") == anonymous
    signed_in = _status(f"Bearer {pair['access_token']}")
    user = database["users"].find_one({"address": wallet.address})
    assert user is not None
    assert signed_in["authenticated"] is True
    assert signed_in["user"] == {
        "id": user["_id"],
        "address": wallet.address,
        "role": "user",
        "tier": "authenticated",
    }
    assert signed_in["expires_at"].endswith("Z")
    # a user deleted since the token was issued is no longer signed in
    database["users"].delete_many({})
    assert _status(f"Bearer {pair['access_token']}") == anonymous


def test_oversized_tokens_are_422() -> None:
    assert _verify("x" * 5000).status == 422
    assert _refresh("x" * 5000).status == 422
    reply = call_auth("GET", "/auth/status", headers={"authorization": "Bearer " + "x" * 5000})
    assert reply.status == 422


def test_tokens_and_signatures_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a full sign-in, refresh, rejections and logout with INFO logging captured
    caplog.set_level(logging.DEBUG)
    wallet = Wallet()
    challenge = call_auth("POST", "/auth/challenge", body={"address": wallet.address}).body
    signature = wallet.sign(challenge["message"])
    body = {"address": wallet.address, "message": challenge["message"], "signature": signature}
    pair = call_auth("POST", "/auth/login", body=body).body
    call_auth("POST", "/auth/login", body=body)  # replay: refused
    rotated = _refresh(pair["refresh_token"]).body
    _verify(rotated["access_token"][:-4] + "AAAA")
    authorize(rotated["access_token"] + "x")
    _logout(rotated["access_token"])
    _refresh(pair["refresh_token"])  # reuse: refused
    # THEN no token, signature or nonce appears anywhere in what was logged or printed
    printed = capsys.readouterr()
    records = " ".join(str(vars(record)) for record in caplog.records)
    logged = caplog.text + records + printed.out + printed.err
    for secret in (
        pair["access_token"],
        pair["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        signature[2:40],
        challenge["nonce"],
    ):
        assert secret not in logged
    assert "request" in logged  # the logs were captured at all


@pytest.mark.usefixtures("database")
def test_a_token_minted_by_another_stage_with_the_same_key_is_refused() -> None:
    # GIVEN a token stage dev minted with the very key this (local) stage signs with
    dev = Settings(STAGE="dev", JWT_SECRET_KEY="test-only-key-0123456789abcdef0123456789abcdef")
    token = TokenService(dev, KeyRing(dev)).issue("0" * 32, Wallet().address, Role.USER, "s").token
    # WHEN it is presented here THEN the authorizer denies it (API Gateway's 403) ...
    assert authorize(token) == {"isAuthorized": False}
    # ... and /auth/verify answers a 401 problem naming the reason
    reply = _verify(token)
    assert reply.status == 401
    assert reply.body["detail"] == "token issuer is not accepted"
