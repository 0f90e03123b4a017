"""Wallet sign-in: challenge, login, refresh and logout, over Redis nonces and Mongo tokens.

Login verifies in this order, each failure its own 401 problem type:

1. the claimed address is a TRON address             InvalidAddressError
2. the message is laid out as ours                   MalformedMessageError
3. its domain, URI, chain and statement are ours     ForeignMessageError
4. it names the claimed address                      NonceAddressMismatchError
5. its nonce is live (consumed here, GETDEL)          UnknownNonceError, ExpiredChallengeError
6. the nonce was issued to the claimed address       NonceAddressMismatchError
7. the message is the one issued with the nonce      ForeignMessageError
8. the signature parses and recovers a key           BadSignatureError
9. that key's address is the claimed one             SignerMismatchError
10. no sign-in was started with the nonce yet         UnknownNonceError

The nonce is spent at step 5, before the (costly) signature check, so two concurrent logins with
one nonce can never both pass; a refused attempt needs a new challenge. An attempt whose
signature was good but that fails afterwards with a 503 (MongoDB down, the signing key
unreadable) puts the nonce back for what is left of its life: no tokens were issued, and the
client may retry the same signed message.

Step 10 holds when Redis forgets that a nonce was spent: a restart restoring older data (an RDB
snapshot, an AOF missing the last writes, a promoted replica that lagged) brings back a nonce
spent after that point, live for the rest of its 5 minutes. The sign-in a nonce started is the
record that it was spent: its first refresh token carries the nonce, uniquely indexed
(`RefreshTokenStore`). Step 10 reads it before anything is written, so a replay touches no user
and issues no token; the index refuses the insert of a replay that raced the first use past
that read (then the replay's `last_login_at` touch is the only write it made).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from lucid.auth.message import build_message, check_ours, parse_message
from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.schemas import Challenge, TokenPair
from lucid.auth.tokens import TokenService
from lucid.auth.tron import SignatureScheme, validate_address, verify_signer
from lucid.config import Settings, SettingsError
from lucid.errors import (
    ExpiredChallengeError,
    ForeignMessageError,
    InvalidAddressError,
    InvalidTokenError,
    NonceAddressMismatchError,
    ServiceUnavailableError,
    UnknownNonceError,
)
from lucid.identity import Role
from lucid.observability import count
from lucid.store import resp
from lucid.store.documents import Document, new_id, utcnow
from lucid.store.keys import nonce_key
from lucid.store.redis_client import store_fault
from lucid.users.repository import UserRepository

NONCE_BYTES = 16  # 128 bits; EIP-4361 asks for at least 64, the issue for at least 96

logger = logging.getLogger("lucid.auth")
NONCE_STORE = "the sign-in nonce store"


def check_admin_addresses(settings: Settings) -> None:
    """`SettingsError` naming every ADMIN_ADDRESSES entry that is not a TRON address in
    Base58Check. Entries are compared exactly with the address a wallet signs in with (itself
    checked Base58Check text, which has one spelling per address), so one in another form (the
    hex `41…`, a typo, a wrong checksum) would make nobody admin without a word."""
    problems = []
    for position, address in enumerate(settings.ADMIN_ADDRESSES, start=1):
        try:
            validate_address(address)
        except InvalidAddressError as error:
            problems.append(
                f"ADMIN_ADDRESSES: entry {position} is not a TRON address in Base58Check "
                f"({error.detail})"
            )
    if problems:
        raise SettingsError(problems)


class SignInService:
    """The sign-in flows, over one Redis client, the users repository and the token stores."""

    def __init__(
        self,
        settings: Settings,
        redis_client: resp.Redis,
        users: UserRepository,
        refresh_tokens: RefreshTokenStore,
        tokens: TokenService,
        clock: Callable[[], datetime] = utcnow,
        api_url: str | None = None,
    ) -> None:
        """`api_url`: the API's own URL as the request reached it, which messages name when
        AUTH_SERVICE_URL is unset on a deployed stage (`Settings.sign_in_url`)."""
        self._settings = settings
        self._api_url = api_url
        self._redis = redis_client
        self._users = users
        self._refresh_tokens = refresh_tokens
        self._tokens = tokens
        self._clock = clock
        self._admins = frozenset(settings.ADMIN_ADDRESSES)

    def challenge(self, address: str) -> Challenge:
        """A new challenge for `address`, its nonce live for SIGNIN_CHALLENGE_TTL_SECONDS."""
        validate_address(address)
        ttl = self._settings.SIGNIN_CHALLENGE_TTL_SECONDS
        issued = self._clock().replace(microsecond=0)
        message = build_message(
            service_url=self._settings.sign_in_url(self._api_url),
            chain_id=self._settings.TRON_CHAIN_ID,
            address=address,
            nonce=secrets.token_hex(NONCE_BYTES),
            issued_at=issued,
            expires_at=issued + timedelta(seconds=ttl),
        )
        record = {
            "address": address,
            "issued_at": message.issued_at,
            "expires_at": message.expiration_time,
        }
        try:
            self._redis.set(
                nonce_key(message.nonce, self._settings.STAGE), json.dumps(record), ex=ttl, nx=True
            )
        except resp.RedisError as error:
            raise ServiceUnavailableError(store_fault(NONCE_STORE, error)) from error
        return Challenge(
            nonce=message.nonce,
            message=message.text(),
            issued_at=message.issued_at,
            expires_at=message.expiration_time,
        )

    def login(
        self,
        address: str,
        message_text: str,
        signature: str,
        scheme: SignatureScheme = SignatureScheme.V2,
    ) -> TokenPair:
        """Tokens for `address` if `signature` signs a live challenge we issued to it."""
        validate_address(address)
        message = parse_message(message_text)
        check_ours(
            message,
            service_url=self._settings.sign_in_url(self._api_url),
            chain_id=self._settings.TRON_CHAIN_ID,
        )
        if message.address != address:
            raise NonceAddressMismatchError("the message was issued to another address")
        now = self._clock()
        record = self._consume_nonce(message.nonce)
        if record is None:
            if message.expires() <= now:
                raise ExpiredChallengeError("the challenge has expired; request a new one")
            raise UnknownNonceError("the nonce is unknown or was already used")
        if record.get("address") != address:
            raise NonceAddressMismatchError("the nonce was issued to another address")
        if (record.get("issued_at"), record.get("expires_at")) != (
            message.issued_at,
            message.expiration_time,
        ):
            raise ForeignMessageError("the message is not the one issued with this nonce")
        if message.expires() <= now:
            raise ExpiredChallengeError("the challenge has expired; request a new one")
        verify_signer(message_text, signature, address, scheme)
        try:
            if self._refresh_tokens.nonce_spent(message.nonce):
                # Live in Redis, yet it started a sign-in: Redis lost that it was spent.
                count("SignInNonceReplayed")
                raise UnknownNonceError("the nonce is unknown or was already used")
            user = self._users.upsert_on_login(address, is_admin=address in self._admins)
            pair = self._issue_pair(user, family_id=None, signin_nonce=message.nonce)
        except ServiceUnavailableError:
            # A 503 (MongoDB down, the key unreadable) after the signer proved itself: the nonce
            # is put back, so the client retries the same signed message, not a wallet prompt.
            self._restore_nonce(message.nonce, record, message.expires())
            raise
        logger.info("signed in", extra={"user_id": user["_id"], "scheme": scheme.value})
        return pair

    def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair for a refresh token, which is spent (see `RefreshTokenStore.use`).

        The token is spent last, once the new pair is made: a failure before (the signing key
        unreadable, MongoDB down) leaves it unspent for the client's retry, which would
        otherwise be a second use and revoke the sign-in. Of concurrent refreshes the one that
        spends it wins; the others' successors are revoked with the family by reuse detection.
        """
        grant = self._refresh_tokens.check(refresh_token)
        user = self._users.find_by_id(grant.user_id)
        if user is None:
            self._refresh_tokens.revoke_family(grant.family_id)
            raise InvalidTokenError("the user of this refresh token no longer exists")
        pair = self._issue_pair(user, family_id=grant.family_id)
        self._refresh_tokens.use(refresh_token)
        return pair

    def logout(self, session_id: str) -> None:
        """End the sign-in `session_id`: its refresh tokens and every access token it issued."""
        self._refresh_tokens.revoke_family(session_id)

    def _consume_nonce(self, nonce: str) -> dict[str, str] | None:
        try:
            raw = self._redis.getdel(nonce_key(nonce, self._settings.STAGE))
        except resp.RedisError as error:
            raise ServiceUnavailableError(store_fault(NONCE_STORE, error)) from error
        if raw is None:
            return None
        record: dict[str, str] = json.loads(raw)
        return record

    def _restore_nonce(self, nonce: str, record: dict[str, str], expires: datetime) -> None:
        left_ms = int((expires - self._clock()).total_seconds() * 1000)
        if left_ms <= 0:
            return
        # NX: never over a nonce someone else holds; a failure leaves it spent (a new challenge).
        with contextlib.suppress(resp.RedisError):
            self._redis.set(
                nonce_key(nonce, self._settings.STAGE), json.dumps(record), px=left_ms, nx=True
            )

    def _issue_pair(
        self, user: Document, family_id: str | None, signin_nonce: str | None = None
    ) -> TokenPair:
        role = Role.parse(user.get("role"))
        session_id = family_id or new_id()  # a login starts a sign-in, a refresh continues one
        access = self._tokens.issue(str(user["_id"]), str(user["address"]), role, session_id)
        refresh_token = self._refresh_tokens.issue(
            str(user["_id"]), access.claims.jti, session_id, role, signin_nonce
        )
        return TokenPair(
            access_token=access.token, refresh_token=refresh_token, expires_in=access.expires_in
        )
