"""POST /auth/challenge and /auth/login through the real Mangum handler (payload 2.0 events)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pymongo.database import Database

from tests.utils.auth_flow import call_auth, sign_in
from tests.utils.events import Reply
from tests.utils.functions import load_module
from tests.utils.logs import logged_lines
from tests.utils.wallets import Wallet

pytestmark = pytest.mark.usefixtures("database")
PROBLEM = "https://lucid.dev/problems/"


def _challenge(wallet: Wallet) -> dict[str, Any]:
    reply = call_auth("POST", "/auth/challenge", body={"address": wallet.address})
    assert reply.status == 200
    body: dict[str, Any] = reply.body
    return body


def _login(address: str, message: str, signature: str, **extra: Any) -> Reply:
    body = {"address": address, "message": message, "signature": signature, **extra}
    return call_auth("POST", "/auth/login", body=body)


def _problem(reply: Reply, status: int, slug: str) -> str:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.body["type"] == PROBLEM + slug
    detail: str = reply.body["detail"]
    return detail


def test_challenge_then_login_gives_a_bearer_pair(database: Database[dict[str, Any]]) -> None:
    # GIVEN a wallet WHEN it asks for a challenge
    wallet = Wallet()
    challenge = _challenge(wallet)
    # THEN the message is the EIP-4361-style TRON text for this gateway
    message = challenge["message"]
    assert message.startswith("127.0.0.1:8080 wants you to sign in with your TRON account:\n")
    assert f"\n{wallet.address}\n" in message
    assert "URI: http://127.0.0.1:8080\nVersion: 1\nChain ID: mainnet\n" in message
    assert f"Nonce: {challenge['nonce']}\n" in message
    assert message.endswith(f"Expiration Time: {challenge['expires_at']}")
    # WHEN it signs with signMessageV2 and logs in THEN it gets a bearer pair
    reply = _login(wallet.address, message, wallet.sign(message))
    assert reply.status == 200
    assert reply.body["token_type"] == "Bearer"
    assert reply.body["expires_in"] == 900
    assert {"access_token", "refresh_token"} <= reply.body.keys()
    assert database["users"].count_documents({"address": wallet.address, "role": "user"}) == 1


def test_legacy_v1_scheme_logs_in_when_the_client_says_so() -> None:
    from lucid.auth.tokens import get_token_service
    from lucid.auth.tron import SignatureScheme

    wallet = Wallet()
    message = _challenge(wallet)["message"]
    with logged_lines() as lines:
        reply = _login(
            wallet.address, message, wallet.sign(message, SignatureScheme.V1), scheme="v1"
        )
    assert reply.status == 200
    # AND the function's log has the sign-in: the user and the scheme it used
    user_id = get_token_service().decode(reply.body["access_token"]).sub
    assert [
        (line["level"], line["user_id"], line["scheme"])
        for line in lines
        if line["message"] == "signed in"
    ] == [("INFO", user_id, "v1")]
    # the same v1 signature without the scheme is checked as v2 and names someone else
    message = _challenge(wallet)["message"]
    v1 = wallet.sign(message, SignatureScheme.V1)
    _problem(_login(wallet.address, message, v1), 401, "signer-mismatch")


@pytest.mark.parametrize(
    ("edit", "slug"),
    [
        (lambda m, w: ("hello", w.sign("hello")), "malformed-sign-in-message"),
        (
            lambda m, w: (m.replace("127.0.0.1:8080 wants", "evil.test wants"), None),
            "foreign-sign-in-message",
        ),
        (lambda m, w: (m, Wallet().sign(m)), "signer-mismatch"),
        (lambda m, w: (m, w.sign(m)[:-2]), "bad-signature"),
        (lambda m, w: (m, w.sign(m) + "00"), "bad-signature"),
        (lambda m, w: (m, "0x" + "g" * 130), "bad-signature"),
    ],
    ids=["malformed", "foreign-domain", "other-key", "64-bytes", "66-bytes", "malformed-hex"],
)
def test_each_rejection_is_its_own_401_problem(edit: Any, slug: str) -> None:
    wallet = Wallet()
    message, signature = edit(_challenge(wallet)["message"], wallet)
    reply = _login(wallet.address, message, signature or wallet.sign(message))
    detail = _problem(reply, 401, slug)
    if signature:
        assert signature.removeprefix("0x")[:20] not in detail


def test_replayed_nonce_is_refused() -> None:
    wallet = Wallet()
    message = _challenge(wallet)["message"]
    signature = wallet.sign(message)
    assert _login(wallet.address, message, signature).status == 200
    _problem(_login(wallet.address, message, signature), 401, "unknown-nonce")


def test_nonce_issued_to_another_address_is_refused() -> None:
    bob, mallory = Wallet(), Wallet()
    message = _challenge(bob)["message"].replace(bob.address, mallory.address)
    reply = _login(mallory.address, message, mallory.sign(message))
    _problem(reply, 401, "nonce-address-mismatch")


@pytest.mark.parametrize("path", ["/auth/challenge", "/auth/login"])
def test_a_malformed_address_is_a_422_naming_the_field(path: str) -> None:
    # GIVEN an address whose Base58Check checksum is wrong (a typo)
    address = Wallet().address
    broken = address[:-1] + ("1" if address[-1] != "1" else "2")
    body = {"address": broken, "message": "m", "signature": "00"}
    # WHEN it asks for a challenge or logs in THEN it is a malformed request, not a failed sign-in
    reply = call_auth("POST", path, body={"address": broken} if "challenge" in path else body)
    assert _problem(reply, 422, "validation") == "invalid address"
    (error,) = reply.body["errors"]
    assert error["loc"] == ["body", "address"]
    assert "checksum" in error["msg"]
    assert broken not in str(reply.body)


def test_the_reference_documents_a_malformed_address_as_the_422_it_is() -> None:
    # GIVEN the auth function's OpenAPI document WHEN it describes POST /auth/challenge
    answers = load_module("auth").app.openapi()["paths"]["/auth/challenge"]["post"]["responses"]
    # THEN a malformed address is the 422 the route answers (above), and no 401 is promised:
    # the body's validation refuses the address before the sign-in service could
    assert "422" in answers
    assert "401" not in answers


# A valid address (the wallet's), so that each 422 can only come from the field it names.
_ADDRESS = Wallet(private_key="11" * 32).address


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "T" * 65}, "address"),
        ({"address": _ADDRESS, "message": "x" * 2049, "signature": "00"}, "message"),
        ({"address": _ADDRESS, "message": "x", "signature": "0" * 141}, "signature"),
        ({"address": _ADDRESS, "message": "", "signature": "00"}, "message"),
        ({"address": _ADDRESS, "message": "x", "signature": "00", "scheme": "v3"}, "scheme"),
        ({"address": _ADDRESS, "message": "x", "signature": "00", "role": "admin"}, "role"),
    ],
    ids=["address", "message", "signature", "empty-message", "scheme", "extra-field"],
)
def test_oversized_or_unexpected_fields_are_422(body: dict[str, Any], field: str) -> None:
    path = "/auth/challenge" if set(body) == {"address"} else "/auth/login"
    reply = call_auth("POST", path, body=body)
    assert _problem(reply, 422, "validation") == f"invalid {field}"
    assert "x" * 100 not in str(reply.body)


def test_a_message_of_the_documented_2048_characters_is_read_not_refused_as_too_long() -> None:
    # GIVEN a message exactly as long as login takes (README: "login takes at most 2,048")
    # WHEN it is posted THEN it passes validation and is refused only as not being ours
    reply = _login(_ADDRESS, "x" * 2048, "00")
    _problem(reply, 401, "malformed-sign-in-message")


def test_concurrent_logins_with_one_nonce_exactly_one_succeeds() -> None:
    wallet = Wallet()
    message = _challenge(wallet)["message"]
    signature = wallet.sign(message)
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def attempt() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            barrier.wait(timeout=10)
            statuses.append(_login(wallet.address, message, signature).status)
        finally:
            asyncio.get_event_loop().close()
            asyncio.set_event_loop(None)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200] + [401] * 5


def test_address_in_admin_addresses_signs_in_as_admin() -> None:
    from lucid.auth.tokens import get_token_service
    from lucid.config import Settings
    from lucid.web.deps import current_settings
    from tests.utils.functions import load_module

    # GIVEN ADMIN_ADDRESSES lists the wallet
    wallet = Wallet()
    app = load_module("auth").app
    app.dependency_overrides[current_settings] = lambda: Settings(ADMIN_ADDRESSES=wallet.address)
    try:
        pair = sign_in(wallet)
    finally:
        app.dependency_overrides.pop(current_settings)
    # THEN its token carries the admin role and tier; another wallet's does not
    claims = get_token_service().decode(pair["access_token"])
    assert (claims.role, claims.tier) == ("admin", "admin")
    other = get_token_service().decode(sign_in(Wallet())["access_token"])
    assert (other.role, other.tier) == ("user", "authenticated")


def test_sign_in_is_rate_limited_per_address_and_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from lucid.config import Settings
    from lucid.ratelimit import default_limiter

    # GIVEN rate limiting on (the test session turns it off) with 10 attempts per address
    settings = Settings(RATE_LIMIT_ENABLED=True)
    monkeypatch.setattr("lucid.ratelimit.limiter.get_settings", lambda: settings)
    default_limiter.cache_clear()
    wallet = Wallet()
    try:
        statuses = [
            call_auth(
                "POST", "/auth/challenge", body={"address": wallet.address}, source_ip=source
            ).status
            for source in ["203.0.113.1"] * 12 + ["203.0.113.2"]
        ]
    finally:
        default_limiter.cache_clear()
    # THEN the 11th and 12th attempts from one source are refused, the owner's from another not
    assert statuses == [200] * 10 + [429] * 2 + [200]
