"""The durable record of revoked sign-ins: `revoked_at` on the documents of `tokens`.

A sign-in is one refresh-token family (`lucid.auth.refresh`); revoking it stamps `revoked_at` on
every document of the family, and the collection's TTL index keeps each document until its
refresh token expires, longer than any access token of the family lives. So the family's
documents are the record `lucid.auth.revocation` reads when Redis cannot answer for itself.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.database import Database

from lucid.store.documents import Document, database_errors

COLLECTION = "tokens"


class MongoRevocationRecord:
    """Revoked sign-ins as `tokens` records them (a `lucid.auth.revocation.RevocationRecord`)."""

    def __init__(self, database: Database[Document]) -> None:
        self._tokens = database[COLLECTION]

    def is_revoked(self, sid: str) -> bool:
        """True when the sign-in (refresh-token family) `sid` was ever revoked."""
        with database_errors("tokens", self._tokens):
            found = self._tokens.find_one(
                {"family_id": sid, "revoked_at": {"$ne": None}}, {"_id": 1}
            )
        return found is not None

    def revoked_since(self, since: datetime) -> dict[str, datetime]:
        """Every sign-in revoked at or after `since`, with its latest revocation time."""
        latest: dict[str, datetime] = {}
        with database_errors("tokens", self._tokens):
            for document in self._tokens.find(
                {"revoked_at": {"$gte": since}}, {"family_id": 1, "revoked_at": 1}
            ):
                family, revoked_at = str(document["family_id"]), document["revoked_at"]
                if family not in latest or revoked_at > latest[family]:
                    latest[family] = revoked_at
        return latest
