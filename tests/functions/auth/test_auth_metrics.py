"""Sign-in outcomes and refresh-token reuse are counted as CloudWatch metrics (EMF)."""

from __future__ import annotations

import pytest
import redis

from tests.utils.auth_flow import call_auth, sign_in
from tests.utils.metrics import emitted
from tests.utils.wallets import Wallet


def test_a_sign_in_is_counted_as_succeeded(
    redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    sign_in(Wallet())
    assert emitted(capsys.readouterr().out).get("SignInSucceeded") == 1


def test_a_forged_signature_is_counted_as_rejected(
    redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    wallet, forger = Wallet(), Wallet()
    message = call_auth("POST", "/auth/challenge", body={"address": wallet.address}).body["message"]
    capsys.readouterr()
    body = {"address": wallet.address, "message": message, "signature": forger.sign(message)}
    assert call_auth("POST", "/auth/login", body=body).status == 401
    metrics = emitted(capsys.readouterr().out)
    assert metrics.get("SignInRejected") == 1
    assert "SignInSucceeded" not in metrics


def test_refresh_token_reuse_is_counted(
    redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = sign_in(Wallet())
    body = {"refresh_token": pair["refresh_token"]}
    assert call_auth("POST", "/auth/refresh", body=body).status == 200
    capsys.readouterr()
    assert call_auth("POST", "/auth/refresh", body=body).status == 401
    assert emitted(capsys.readouterr().out).get("RefreshTokenReuse") == 1
