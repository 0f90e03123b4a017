"""Interop: a signature made by the real TronWeb (`Trx.signMessageV2`, what TronLink uses) over
the message our challenge issues signs in. TronWeb runs in Node.js; `make test` installs it into
tests/interop/node_modules with npm. Without Node or that install the test is skipped, saying so.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.utils.auth_flow import authorize, call_auth

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
INSTALLED = (HERE / "node_modules" / "tronweb" / "package.json").is_file()

pytestmark = pytest.mark.skipif(
    NODE is None or not INSTALLED,
    reason="needs Node.js and `npm install` in tests/interop (make test does it)",
)


def tronweb_sign(message: str, private_key: str) -> dict[str, str]:
    completed = subprocess.run(
        [str(NODE), str(HERE / "sign_v2.js"), message, private_key],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, str] = json.loads(completed.stdout)
    return result


def test_the_published_vector_matches_tronweb() -> None:
    signed = tronweb_sign("hello world", "00" * 31 + "01")
    assert signed["address"] == "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"
    assert signed["signature"].startswith("0x0dc0b53d525e0103a6013061cf18e60cf1588091")


def test_a_tronweb_signature_over_our_challenge_signs_in(redis_client: redis.Redis) -> None:
    # GIVEN a wallet whose address TronWeb derives from a fresh key
    key = secrets.token_hex(32)
    address = tronweb_sign("probe", key)["address"]
    # WHEN the gateway issues a challenge and TronWeb signs it with signMessageV2
    challenge = call_auth("POST", "/auth/challenge", body={"address": address})
    assert challenge.status == 200
    signed = tronweb_sign(challenge.body["message"], key)
    login = call_auth(
        "POST",
        "/auth/login",
        body={
            "address": address,
            "message": challenge.body["message"],
            "signature": signed["signature"],
        },
    )
    # THEN the login succeeds and the token names that wallet
    assert login.status == 200, login.body
    decision = authorize(login.body["access_token"])
    assert decision["isAuthorized"] is True
    assert decision["context"]["address"] == address
