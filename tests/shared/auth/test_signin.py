"""Wallet sign-in against the real Redis and an in-memory MongoDB: every rejection, in order."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.auth.keys import KeyRing
from lucid.auth.message import build_message
from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.signin import SignInService
from lucid.auth.tokens import TokenService
from lucid.auth.tron import SignatureScheme
from lucid.config import Settings
from lucid.errors import (
    AuthenticationError,
    BadSignatureError,
    ExpiredChallengeError,
    ForeignMessageError,
    InvalidAddressError,
    InvalidTokenError,
    MalformedMessageError,
    NonceAddressMismatchError,
    ServiceUnavailableError,
    SignerMismatchError,
    UnknownNonceError,
)
from lucid.store import resp
from lucid.store.documents import utcnow
from lucid.store.keys import nonce_key
from lucid.users.repository import UserRepository
from lucid_edge.local import EmbeddedRedis, free_port, in_memory_database
from tests.utils.datastore import atomic_writes, revocations_on
from tests.utils.layer_redis import layer_redis, refused_uri, unreachable_redis
from tests.utils.wallets import Wallet

ADMIN = Wallet()
# The README's troubleshooting table quotes the 503s' details: they must be the code's words.
README_TEXT = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
SETTINGS = Settings(
    STAGE="local",
    JWT_SECRET_KEY="signin-test-key-0123456789abcdef0123456789",
    AUTH_SERVICE_URL="https://api.lucid.test",
    ADMIN_ADDRESSES=ADMIN.address,
)


@pytest.fixture
def database() -> Iterator[Database[dict[str, Any]]]:
    with atomic_writes():
        yield in_memory_database()


def _service(
    redis_client: resp.Redis,
    database: Database[dict[str, Any]],
    shift: timedelta = timedelta(),
    at: datetime | None = None,
) -> SignInService:
    """The service on a clock `shift` from now, or stopped `at` a moment."""
    return SignInService(
        SETTINGS,
        redis_client,
        UserRepository(database),
        RefreshTokenStore(database, timedelta(days=14), revocations_on(redis_client, database)),
        TokenService(SETTINGS, KeyRing(SETTINGS)),
        clock=lambda: at or utcnow() + shift,
    )


@pytest.fixture
def service(store_redis: resp.Redis, database: Database[dict[str, Any]]) -> SignInService:
    return _service(store_redis, database)


def _tokens(service: SignInService) -> TokenService:
    return TokenService(SETTINGS, KeyRing(SETTINGS))


def test_wallet_signs_in_and_becomes_a_user(
    service: SignInService, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a new wallet WHEN it signs the issued challenge with signMessageV2
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    pair = service.login(wallet.address, challenge.message, wallet.sign(challenge.message))
    # THEN it gets a bearer pair for a stored user with role "user"
    claims = _tokens(service).decode(pair.access_token)
    user = database["users"].find_one({"address": wallet.address})
    assert user is not None
    assert (claims.sub, claims.addr, claims.role, claims.tier) == (
        user["_id"],
        wallet.address,
        "user",
        "authenticated",
    )
    assert (pair.token_type, pair.expires_in) == ("Bearer", 900)
    assert user["created_at"] == user["last_login_at"]
    # AND its nonce is the README's 128 bits (EIP-4361 asks for at least 64), in hex
    assert re.fullmatch("[0-9a-f]{32}", challenge.nonce)


def test_second_login_keeps_the_user_and_touches_last_login(
    service: SignInService, database: Database[dict[str, Any]]
) -> None:
    wallet = Wallet()
    for _ in range(2):
        challenge = service.challenge(wallet.address)
        pair = service.login(wallet.address, challenge.message, wallet.sign(challenge.message))
    users = list(database["users"].find({"address": wallet.address}))
    assert len(users) == 1
    assert users[0]["last_login_at"] >= users[0]["created_at"]
    assert _tokens(service).decode(pair.access_token).sub == users[0]["_id"]


def test_admin_address_signs_in_as_admin_with_legacy_v1(service: SignInService) -> None:
    challenge = service.challenge(ADMIN.address)
    signature = ADMIN.sign(challenge.message, SignatureScheme.V1)
    pair = service.login(ADMIN.address, challenge.message, signature, SignatureScheme.V1)
    claims = _tokens(service).decode(pair.access_token)
    assert (claims.role, claims.tier) == ("admin", "admin")


def _login_error(
    service: SignInService, address: str, message: str, signature: str
) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        service.login(address, message, signature)
    return caught.value


def test_invalid_base58_checksum_is_refused(service: SignInService) -> None:
    wallet = Wallet()
    broken = wallet.address[:-1] + ("1" if wallet.address[-1] != "1" else "2")
    with pytest.raises(InvalidAddressError, match="checksum"):
        service.challenge(broken)
    challenge = service.challenge(wallet.address)
    error = _login_error(service, broken, challenge.message, wallet.sign(challenge.message))
    assert isinstance(error, InvalidAddressError)


def test_replayed_nonce_is_refused(service: SignInService) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    signature = wallet.sign(challenge.message)
    service.login(wallet.address, challenge.message, signature)
    error = _login_error(service, wallet.address, challenge.message, signature)
    assert isinstance(error, UnknownNonceError)


def test_malleated_signature_cannot_replay_a_nonce(service: SignInService) -> None:
    # GIVEN a used challenge WHEN the n - s twin of its signature is sent THEN it is refused
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    signature = wallet.sign(challenge.message)
    service.login(wallet.address, challenge.message, signature)
    raw = bytes.fromhex(signature[2:])
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = (order - int.from_bytes(raw[32:64], "big")).to_bytes(32, "big")
    twin = (raw[:32] + s + bytes([55 - raw[64]])).hex()
    assert isinstance(
        _login_error(service, wallet.address, challenge.message, twin), UnknownNonceError
    )


def test_nonce_never_issued_is_unknown(service: SignInService) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    forged = challenge.message.replace(challenge.nonce, "f" * 32)
    error = _login_error(service, wallet.address, forged, wallet.sign(forged))
    assert isinstance(error, UnknownNonceError)
    assert error.detail == "the nonce is unknown or was already used"


def test_expired_challenge_still_in_redis_is_refused(
    store_redis: resp.Redis, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a challenge issued 6 minutes ago (5-minute validity) whose key has not lapsed yet
    wallet = Wallet()
    challenge = _service(store_redis, database, -timedelta(minutes=6)).challenge(wallet.address)
    error = _login_error(
        _service(store_redis, database),
        wallet.address,
        challenge.message,
        wallet.sign(challenge.message),
    )
    assert isinstance(error, ExpiredChallengeError)


@pytest.mark.parametrize("nonce_kept", [True, False])
def test_a_challenge_is_expired_at_its_expiration_time_to_the_second(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
    database: Database[dict[str, Any]],
    nonce_kept: bool,
) -> None:
    # GIVEN a challenge (5-minute validity), its nonce kept in Redis or lapsed with its TTL
    wallet = Wallet()
    issued = utcnow().replace(microsecond=0)
    challenge = _service(store_redis, database, at=issued).challenge(wallet.address)
    if not nonce_kept:
        redis_client.delete(nonce_key(challenge.nonce))
    # WHEN it is presented at exactly its Expiration Time THEN it is refused as expired
    signature = wallet.sign(challenge.message)
    error = _login_error(
        _service(store_redis, database, at=issued + timedelta(minutes=5)),
        wallet.address,
        challenge.message,
        signature,
    )
    assert isinstance(error, ExpiredChallengeError)
    assert error.detail == "the challenge has expired; request a new one"


def test_expired_challenge_whose_nonce_lapsed_is_refused_as_expired(
    redis_client: redis.Redis, store_redis: resp.Redis, database: Database[dict[str, Any]]
) -> None:
    # GIVEN a challenge whose Redis key has expired (the TTL ran out)
    wallet = Wallet()
    old = _service(store_redis, database, -timedelta(minutes=6))
    challenge = old.challenge(wallet.address)
    redis_client.delete(nonce_key(challenge.nonce))
    error = _login_error(
        _service(store_redis, database),
        wallet.address,
        challenge.message,
        wallet.sign(challenge.message),
    )
    assert isinstance(error, ExpiredChallengeError)


def test_nonce_key_has_the_challenge_ttl(service: SignInService, redis_client: redis.Redis) -> None:
    challenge = service.challenge(Wallet().address)
    assert 295 <= redis_client.ttl(nonce_key(challenge.nonce)) <= 300


def test_nonce_issued_to_another_address_is_refused(service: SignInService) -> None:
    # GIVEN Bob's challenge, relabelled with Mallory's address and signed by Mallory
    bob, mallory = Wallet(), Wallet()
    challenge = service.challenge(bob.address)
    relabelled = challenge.message.replace(bob.address, mallory.address)
    error = _login_error(service, mallory.address, relabelled, mallory.sign(relabelled))
    assert isinstance(error, NonceAddressMismatchError)
    assert error.detail == "the nonce was issued to another address"


def test_message_for_another_address_than_claimed_is_refused(service: SignInService) -> None:
    bob, mallory = Wallet(), Wallet()
    challenge = service.challenge(bob.address)
    error = _login_error(service, mallory.address, challenge.message, bob.sign(challenge.message))
    assert isinstance(error, NonceAddressMismatchError)
    assert error.detail == "the message was issued to another address"
    # AND the attempt did not spend Bob's nonce: refused before it is consumed, so nobody can
    # burn another wallet's challenge by claiming it for their own address
    pair = service.login(bob.address, challenge.message, bob.sign(challenge.message))
    assert _tokens(service).decode(pair.access_token).addr == bob.address


def test_message_with_other_times_than_issued_is_refused(service: SignInService) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    stretched = challenge.message.replace(challenge.expires_at, "2099-01-01T00:00:00Z")
    error = _login_error(service, wallet.address, stretched, wallet.sign(stretched))
    assert isinstance(error, ForeignMessageError)
    assert error.detail == "the message is not the one issued with this nonce"


def test_foreign_domain_is_refused(service: SignInService) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    foreign = challenge.message.replace("api.lucid.test wants", "evil.test wants")
    error = _login_error(service, wallet.address, foreign, wallet.sign(foreign))
    assert isinstance(error, ForeignMessageError)
    # a refused foreign message did not spend the nonce
    service.login(wallet.address, challenge.message, wallet.sign(challenge.message))


def test_malformed_message_is_refused(service: SignInService) -> None:
    wallet = Wallet()
    error = _login_error(service, wallet.address, "please let me in", wallet.sign("x"))
    assert isinstance(error, MalformedMessageError)


def test_signature_by_another_key_is_refused(service: SignInService) -> None:
    wallet, other = Wallet(), Wallet()
    challenge = service.challenge(wallet.address)
    error = _login_error(service, wallet.address, challenge.message, other.sign(challenge.message))
    assert isinstance(error, SignerMismatchError)


def test_signature_for_another_message_is_refused(service: SignInService) -> None:
    wallet = Wallet()
    first, second = service.challenge(wallet.address), service.challenge(wallet.address)
    error = _login_error(service, wallet.address, second.message, wallet.sign(first.message))
    assert isinstance(error, SignerMismatchError)


@pytest.mark.parametrize("cut", [2, -2])
def test_64_and_66_byte_signatures_are_refused(service: SignInService, cut: int) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    signature = wallet.sign(challenge.message)
    signature = signature[:cut] if cut < 0 else signature + "00"
    error = _login_error(service, wallet.address, challenge.message, signature)
    assert isinstance(error, BadSignatureError)
    assert error.detail.endswith("got 64" if cut < 0 else "got 66")


def test_malformed_hex_signature_is_refused(service: SignInService) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    error = _login_error(service, wallet.address, challenge.message, "0x" + "zz" * 65)
    assert isinstance(error, BadSignatureError)


def test_concurrent_logins_with_one_nonce_exactly_one_succeeds(service: SignInService) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    signature = wallet.sign(challenge.message)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait(timeout=10)
        try:
            service.login(wallet.address, challenge.message, signature)
            outcomes.append("ok")
        except UnknownNonceError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7


def test_logout_ends_the_sign_in_its_access_and_refresh_tokens(
    service: SignInService, store_redis: resp.Redis, database: Database[dict[str, Any]]
) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    pair = service.login(wallet.address, challenge.message, wallet.sign(challenge.message))
    rotated = service.refresh(pair.refresh_token)
    first, second = (_tokens(service).decode(p.access_token) for p in (pair, rotated))
    assert first.sid == second.sid  # one sign-in, rotated once
    service.logout(second.sid)
    assert revocations_on(store_redis, database).is_revoked(first.sid)
    with pytest.raises(InvalidTokenError, match="revoked"):
        service.refresh(rotated.refresh_token)
    # AND another sign-in of the same wallet goes on
    again = service.challenge(wallet.address)
    other = service.login(wallet.address, again.message, wallet.sign(again.message))
    other_sid = _tokens(service).decode(other.access_token).sid
    assert other_sid != first.sid
    assert not revocations_on(store_redis, database).is_revoked(other_sid)


def test_refresh_rotates_and_refuses_a_deleted_user(
    service: SignInService, store_redis: resp.Redis, database: Database[dict[str, Any]]
) -> None:
    wallet = Wallet()
    challenge = service.challenge(wallet.address)
    pair = service.login(wallet.address, challenge.message, wallet.sign(challenge.message))
    rotated = service.refresh(pair.refresh_token)
    assert rotated.refresh_token != pair.refresh_token
    claims = _tokens(service).decode(rotated.access_token)
    assert claims.addr == wallet.address
    database["users"].delete_many({})
    with pytest.raises(InvalidTokenError, match="no longer exists"):
        service.refresh(rotated.refresh_token)
    # AND the sign-in is ended: the access tokens it issued are refused from now on
    assert revocations_on(store_redis, database).is_revoked(claims.sid)


def test_redis_outage_is_service_unavailable(database: Database[dict[str, Any]]) -> None:
    # GIVEN the nonce store is down THEN sign-in answers 503, never a 500 or a false 401
    dead = unreachable_redis(free_port())
    wallet = Wallet()
    message = build_message(
        service_url=SETTINGS.sign_in_url(None),
        chain_id=SETTINGS.TRON_CHAIN_ID,
        address=wallet.address,
        nonce="a" * 32,
        issued_at=utcnow(),
        expires_at=utcnow() + timedelta(minutes=5),
    ).text()
    try:
        service = _service(dead, database)
        # (the detail the README's troubleshooting table names)
        for attempt in (
            lambda: service.challenge(wallet.address),
            lambda: service.login(wallet.address, message, wallet.sign(message)),
        ):
            with pytest.raises(ServiceUnavailableError) as raised:
                attempt()
            assert raised.value.detail == "the sign-in nonce store is unavailable"
            assert f'"{raised.value.detail}"' in README_TEXT
    finally:
        dead.close()


def test_a_redis_refusing_the_credentials_is_a_503_saying_so(
    database: Database[dict[str, Any]], redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN the nonce store's Redis refuses REDIS_URI's password
    wallet = Wallet()
    with refused_uri(redis_client, redis_server.uri) as uri:
        refusing = layer_redis(uri)
        try:
            # WHEN a challenge is asked for
            with pytest.raises(ServiceUnavailableError) as raised:
                _service(refusing, database).challenge(wallet.address)
        finally:
            refusing.close()
    # THEN the 503 says the credentials were refused, not that the store is unavailable
    assert raised.value.detail == "the sign-in nonce store refused the credentials"
    assert f'"{raised.value.detail}"' in README_TEXT  # the troubleshooting table names it
