"""Refresh tokens: opaque, single use, rotated, with reuse detection (RFC 9700 section 4.14).

A refresh token is `secrets.token_urlsafe(32)` (256 bits, 43 characters), never a JWT, so it can
never pass as an access token nor the reverse. Only its SHA-256 is stored, in `tokens`:

    _id          SHA-256 hex of the token
    family_id    one per sign-in; every rotation stays in the family
    user_id      the user it signs in
    access_jti   jti of the access token issued with it
    role         the role that access token carries (None on documents written before it was
                 recorded: such a sign-in counts as carrying any other role)
    signin_nonce SHA-256 hex of the sign-in nonce a login spent, on the sign-in's first document
                 only (uniquely indexed: a nonce starts one sign-in, whatever Redis remembers)
    created_at, expires_at (TTL index), used_at, revoked_at

The family is the sign-in: its id is the `sid` claim of every access token issued with one of its
refresh tokens, and `revoked_at` on its documents is the durable record of its revocation
(`lucid.auth.revocation_record`). Every revocation goes through this store, which writes that
record first and then the Redis copy every check reads (`lucid.auth.revocation`).

Using a token marks it used in one atomic `find_one_and_update`, so of two concurrent uses
exactly one wins. A rotation (`lucid.auth.signin.SignInService.refresh`) checks the token first,
makes the new pair (the user read, the access token signed, the successor stored) and spends the
token last: a failure before that (a key AWS does not hand over, MongoDB down) is a 503 that
leaves it unspent, so the client's retry is not taken for a second use. A used token that
comes back means it leaked (or a client raced itself): the whole family is revoked, with every
access token of the sign-in, and `RefreshTokenReuseError` raised. Of two racing uses the winner
still gets its new pair, but the loser's revocation covers the winner's new token too: a
rotation checks, after inserting its token, whether the family was revoked meanwhile and if so
revokes it.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from lucid.auth.revocation import RevocationList
from lucid.errors import (
    AuthenticationError,
    InvalidTokenError,
    RefreshTokenReuseError,
    UnknownNonceError,
)
from lucid.identity import Role
from lucid.observability import count
from lucid.store.documents import Document, database_errors, utcnow
from lucid.store.indexes import ensure_indexes_once

COLLECTION = "tokens"
TOKEN_BYTES = 32
_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")


class RefreshGrant(NamedTuple):
    """What a valid refresh token grants: a new token for `user_id` in `family_id`."""

    user_id: str
    family_id: str


def hash_refresh_token(token: str) -> str:
    """The stored form of `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokenStore:
    """Issues, rotates and revokes refresh tokens in `tokens`, and with them the sign-ins."""

    def __init__(
        self, database: Database[Document], lifetime: timedelta, revocations: RevocationList
    ) -> None:
        self._tokens = database[COLLECTION]
        self._lifetime = lifetime
        self._revocations = revocations
        ensure_indexes_once(database)

    def issue(
        self,
        user_id: str,
        access_jti: str,
        family_id: str,
        role: Role | None = None,
        signin_nonce: str | None = None,
    ) -> str:
        """A new refresh token for `user_id` in the sign-in `family_id` (new or rotated), issued
        with an access token carrying `role`; a login names the nonce it spent.

        `UnknownNonceError` (nothing stored) when a sign-in was already started with that nonce.
        """
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = utcnow()
        document: Document = {
            "_id": hash_refresh_token(token),
            "family_id": family_id,
            "user_id": user_id,
            "access_jti": access_jti,
            "role": None if role is None else role.value,
            "created_at": now,
            "expires_at": now + self._lifetime,
            "used_at": None,
            "revoked_at": None,
        }
        if signin_nonce is not None:
            document["signin_nonce"] = _nonce_digest(signin_nonce)
        with database_errors("tokens", self._tokens):
            try:
                self._tokens.insert_one(document)
            except DuplicateKeyError as error:
                # A refresh token is 256 random bits: only the nonce can collide.
                raise UnknownNonceError("the nonce is unknown or was already used") from error
            revoked_meanwhile = self._family_revoked(family_id)
            if revoked_meanwhile:
                # The family was revoked while this rotation ran: the revocation's update_many
                # may have missed this new document, so it is revoked here.
                revoked_at = utcnow()
                self._tokens.update_one(
                    {"_id": document["_id"]}, {"$set": {"revoked_at": revoked_at}}
                )
        if revoked_meanwhile:
            self._revocations.remember({family_id: revoked_at})
        return token

    def nonce_spent(self, signin_nonce: str) -> bool:
        """True when a sign-in was started with `signin_nonce` (one indexed read)."""
        with database_errors("tokens", self._tokens):
            found = self._tokens.find_one({"signin_nonce": _nonce_digest(signin_nonce)}, {"_id": 1})
        return found is not None

    def check(self, token: str) -> RefreshGrant:
        """What `token` would grant if spent now, without spending it; the refusals of `use`
        (reuse detection included) when it could not be spent."""
        token_hash = _hash_of(token)
        with database_errors("tokens", self._tokens):
            found = self._tokens.find_one(_spendable(token_hash, utcnow()))
            if found is None:
                raise self._refusal(token_hash)
        return RefreshGrant(user_id=found["user_id"], family_id=found["family_id"])

    def use(self, token: str) -> RefreshGrant:
        """Spend `token` once; `InvalidTokenError` or `RefreshTokenReuseError` if it cannot be."""
        token_hash = _hash_of(token)
        now = utcnow()
        with database_errors("tokens", self._tokens):
            spent = self._tokens.find_one_and_update(
                _spendable(token_hash, now),
                {"$set": {"used_at": now}},
                return_document=ReturnDocument.AFTER,
            )
            if spent is None:
                raise self._refusal(token_hash)
        return RefreshGrant(user_id=spent["user_id"], family_id=spent["family_id"])

    def revoke_family(self, family_id: str) -> None:
        """Revoke the sign-in `family_id`: its refresh tokens and every access token naming it."""
        revoked_at = utcnow()
        with database_errors("tokens", self._tokens):
            self._tokens.update_many(
                {"family_id": family_id, "revoked_at": None}, {"$set": {"revoked_at": revoked_at}}
            )
        self._revocations.remember({family_id: revoked_at})

    def revoke_user(self, user_id: str) -> int:
        """Revoke every sign-in of `user_id` (an account closure); how many."""
        return self._revoke_families({"user_id": user_id})

    def revoke_other_roles(self, user_id: str, role: Role) -> int:
        """Revoke every sign-in of `user_id` whose tokens carry a role other than `role` (a role
        change); how many.

        It compares with what the sign-in's tokens carry, not with what the role was before the
        change, so it finishes the job wherever a role change stopped half way: a demotion whose
        role write succeeded and whose sign-out failed (503) is signed out by its retry, which
        finds the role unchanged. A sign-in whose every token already carries `role` is kept.
        """
        return self._revoke_families({"user_id": user_id, "role": {"$ne": role.value}})

    def _revoke_families(self, live_tokens: dict[str, object]) -> int:
        """Revoke each whole sign-in that has a live token matching `live_tokens`."""
        revoked_at = utcnow()
        with database_errors("tokens", self._tokens):
            families = self._tokens.distinct("family_id", {**live_tokens, "revoked_at": None})
            if families:
                self._tokens.update_many(
                    {"family_id": {"$in": families}, "revoked_at": None},
                    {"$set": {"revoked_at": revoked_at}},
                )
        self._revocations.remember(dict.fromkeys(families, revoked_at))
        return len(families)

    def _refusal(self, token_hash: str) -> AuthenticationError:
        document = self._tokens.find_one({"_id": token_hash})
        if document is None:
            return InvalidTokenError("refresh token is unknown")
        if document["used_at"] is not None:
            self.revoke_family(document["family_id"])
            count("RefreshTokenReuse")  # a stolen token, or a client racing itself
            return RefreshTokenReuseError(
                "refresh token was already used: every token of this sign-in is revoked"
            )
        if document["revoked_at"] is not None:
            return InvalidTokenError("refresh token was revoked")
        return InvalidTokenError("refresh token has expired")

    def _family_revoked(self, family_id: str) -> bool:
        revoked = {"family_id": family_id, "revoked_at": {"$ne": None}}
        return self._tokens.find_one(revoked, {"_id": 1}) is not None


def _nonce_digest(nonce: str) -> str:
    # Stored and queried hashed, like the tokens: a driver's command log never shows a nonce.
    return hashlib.sha256(nonce.encode()).hexdigest()


def _hash_of(token: str) -> str:
    if not _FORMAT.fullmatch(token):
        raise InvalidTokenError("not a refresh token")
    return hash_refresh_token(token)


def _spendable(token_hash: str, now: datetime) -> Document:
    """The filter of the token `token_hash` if it can be spent at `now`."""
    return {"_id": token_hash, "used_at": None, "revoked_at": None, "expires_at": {"$gt": now}}
