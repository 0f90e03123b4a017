"""Refresh tokens: opaque, single use, rotated, with reuse detection (RFC 9700 section 4.14).

A refresh token is `secrets.token_urlsafe(32)` (256 bits, 43 characters), never a JWT, so it can
never pass as an access token nor the reverse. Only its SHA-256 is stored, in `tokens`:

    _id          SHA-256 hex of the token
    family_id    one per sign-in; every rotation stays in the family
    user_id      the user it signs in
    access_jti   jti of the access token issued with it (logout finds the family by it)
    created_at, expires_at (TTL index), used_at, revoked_at

Using a token marks it used in one atomic `find_one_and_update`, so of two concurrent uses
exactly one wins. A used token that comes back means it leaked (or a client raced itself): the
whole family is revoked and `RefreshTokenReuseError` raised. Of two racing uses the winner still
gets its new pair, but the loser's revocation covers the winner's new token too: a rotation
checks, after inserting its token, whether the family was revoked meanwhile and if so revokes it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import redis
from pymongo import ReturnDocument
from pymongo.database import Database

from lucid.auth.denylist import deny_token
from lucid.errors import AuthenticationError, InvalidTokenError, RefreshTokenReuseError
from lucid.observability import count
from lucid.store.documents import Document, database_errors, new_id, utcnow
from lucid.store.indexes import ensure_indexes_once

COLLECTION = "tokens"
TOKEN_BYTES = 32
_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a valid refresh token grants: a new token for `user_id` in `family_id`."""

    user_id: str
    family_id: str


def hash_refresh_token(token: str) -> str:
    """The stored form of `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokenStore:
    """Issues, rotates and revokes refresh tokens in `tokens`."""

    def __init__(self, database: Database[Document], lifetime: timedelta) -> None:
        self._tokens = database[COLLECTION]
        self._lifetime = lifetime
        ensure_indexes_once(database)

    def issue(self, user_id: str, access_jti: str, family_id: str | None = None) -> str:
        """A new refresh token for `user_id` (a new family unless `family_id` is given)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = utcnow()
        document = {
            "_id": hash_refresh_token(token),
            "family_id": family_id or new_id(),
            "user_id": user_id,
            "access_jti": access_jti,
            "created_at": now,
            "expires_at": now + self._lifetime,
            "used_at": None,
            "revoked_at": None,
        }
        with database_errors("tokens"):
            self._tokens.insert_one(document)
            if family_id is not None and self._family_revoked(family_id):
                # The family was revoked while this rotation ran: the revocation's update_many
                # may have missed this new document, so it is revoked here.
                self._tokens.update_one(
                    {"_id": document["_id"]}, {"$set": {"revoked_at": utcnow()}}
                )
        return token

    def use(self, token: str) -> RefreshGrant:
        """Spend `token` once; `InvalidTokenError` or `RefreshTokenReuseError` if it cannot be."""
        if not _FORMAT.fullmatch(token):
            raise InvalidTokenError("not a refresh token")
        token_hash = hash_refresh_token(token)
        now = utcnow()
        with database_errors("tokens"):
            spent = self._tokens.find_one_and_update(
                {
                    "_id": token_hash,
                    "used_at": None,
                    "revoked_at": None,
                    "expires_at": {"$gt": now},
                },
                {"$set": {"used_at": now}},
                return_document=ReturnDocument.AFTER,
            )
            if spent is None:
                raise self._refusal(token_hash)
        return RefreshGrant(user_id=spent["user_id"], family_id=spent["family_id"])

    def revoke_family_of_access_token(self, access_jti: str) -> None:
        """Revoke the family of the refresh token issued with access token `access_jti`."""
        with database_errors("tokens"):
            document = self._tokens.find_one({"access_jti": access_jti}, {"family_id": 1})
        if document is not None:
            self.revoke_family(document["family_id"])

    def revoke_family(self, family_id: str) -> None:
        """Revoke every token of `family_id`."""
        with database_errors("tokens"):
            self._tokens.update_many(
                {"family_id": family_id, "revoked_at": None}, {"$set": {"revoked_at": utcnow()}}
            )

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


def revoke_user_access(
    database: Database[Document],
    client: redis.Redis,
    user_id: str,
    access_lifetime: timedelta,
) -> int:
    """Sign `user_id` out everywhere: every refresh family revoked, then every access token
    issued within one access lifetime (and so possibly still valid) denylisted until it expires.

    Used when a role changes (a token must not keep a role its user lost) and when an account
    is closed. Families go first so no rotation can mint a token after the sweep; returns how
    many access tokens were denylisted.
    """
    revoke_user_families(database, user_id)
    since = utcnow() - access_lifetime
    with database_errors("tokens"):
        issued = list(
            database[COLLECTION].find(
                {"user_id": user_id, "created_at": {"$gt": since}},
                {"access_jti": 1, "created_at": 1},
            )
        )
    for document in issued:
        expires_at = document["created_at"] + access_lifetime
        deny_token(client, str(document["access_jti"]), int(expires_at.timestamp()))
    return len(issued)


def revoke_user_families(database: Database[Document], user_id: str) -> None:
    """Revoke every refresh token of `user_id` in `database` (account closure)."""
    with database_errors("tokens"):
        database[COLLECTION].update_many(
            {"user_id": user_id, "revoked_at": None}, {"$set": {"revoked_at": utcnow()}}
        )
