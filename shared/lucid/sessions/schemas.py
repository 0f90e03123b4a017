"""What clients may send about a session, and what they get back.

Request models forbid unknown fields (`extra="forbid"`), so `owner_id`, `status` on create,
`version`, `id` or anything else a client invents is a 422 naming the field instead of being
stored (mass assignment, OWASP API3). Every string has a length limit; metadata is a JSON object
of at most 16 KB whose keys cannot act as MongoDB operators.
"""

# No `from __future__ import annotations` here: pydantic evaluates every string annotation of
# a model when it builds the model's schema at import (README, "Cold start of the built
# artifact").

from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from lucid.sessions.lifecycle import SessionStatus
from lucid.store.documents import Document, Timestamp, check_json_object, iso
from lucid.store.json_object import JSON_OBJECT as _JSON
from lucid.store.text import NO_CONTROLS, NoControls

MAX_METADATA_BYTES = 16 * 1024


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    return check_json_object(value, max_bytes=MAX_METADATA_BYTES)


SessionName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NO_CONTROLS),
    NoControls,
]
NodeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata)]


class SessionCreate(BaseModel):
    """The body of POST /sessions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "first", "node_id": "node-7", "metadata": {"region": "eu"}}]
        },
    )

    # What `model_validate_json` accepts from a body, `json.loads` then `model_validate` (FastAPI's
    # path) accept with the same values, so a POST's body is validated from its bytes in one call
    # (lucid.web.flat_dependencies `Lean`); tests/shared/sessions/test_schemas_from_json.py pins it.
    same_from_json: ClassVar[bool] = True

    name: SessionName
    node_id: NodeId | None = None
    metadata: Metadata = Field(default_factory=dict)


class SessionPatch(BaseModel):
    """The body of PATCH /sessions/{id}: only what was sent is changed."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "active"}]}
    )

    name: SessionName | None = None
    metadata: Metadata | None = None
    status: SessionStatus | None = None

    @field_validator("name", "metadata", "status", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omit a field to leave it alone; null would read as "erase", which none of them allow.
        if value is None:
            raise ValueError("must not be null (omit the field to leave it unchanged)")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the client sent with a value (null is not a value for any of them)."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class Session(BaseModel):
    """A session as the sessions routes return it (ETag: its `version`, quoted)."""

    id: str = Field(description="the session id (32 hex characters)")
    owner_id: str = Field(description="the user who created it")
    name: str
    node_id: str | None
    status: SessionStatus = Field(description="pending -> active -> ended, or pending -> ended")
    metadata: dict[str, Any] = Field(description="the client's own JSON object (<= 16 KB)")
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None = Field(description="when it became active")
    ended_at: Timestamp | None = Field(description="when it ended")
    version: int = Field(description="incremented by every change; If-Match compares it")

    @classmethod
    def from_document(cls, document: Document) -> Self:
        """The representation of a stored session."""
        return cls(
            id=document["_id"],
            owner_id=document["owner_id"],
            name=document["name"],
            node_id=document.get("node_id"),
            status=document["status"],
            metadata=document.get("metadata", {}),
            created_at=iso(document["created_at"]),
            updated_at=iso(document["updated_at"]),
            started_at=iso(document.get("started_at")),
            ended_at=iso(document.get("ended_at")),
            version=document["version"],
        )

    @classmethod
    def json_of(cls, document: Document) -> bytes | None:
        """`from_document(document)` as a route answers it (FastAPI: the response model's
        `dump_json`), without building the model; None when a value is not of the exact type
        the model holds (`from_document` then validates, converts or refuses it, as before).

        Building the model validated each value again and FastAPI validated the model once more
        before dumping it: ~74 K instructions per GET /sessions/{id}, against ~32 K for this
        (valgrind, CPython 3.11). The same bytes: the values are those the model would hold
        (a str is validated as itself, the status as the member whose value it is, and dumped
        as that value), in the order of its fields, and pydantic's serializer of a JSON object
        with the default config dumps them as the model's does (no aliases, NaN and infinities
        as null; `metadata`'s values by their types in both). The reads are from_document's,
        in its order, so a document missing a field raises the same KeyError.
        """
        session_id = document["_id"]
        owner_id = document["owner_id"]
        name = document["name"]
        node_id = document.get("node_id")
        status = document["status"]
        metadata = document.get("metadata", {})
        created_at = iso(document["created_at"])
        updated_at = iso(document["updated_at"])
        started_at = iso(document.get("started_at"))
        ended_at = iso(document.get("ended_at"))
        version = document["version"]
        if not (
            type(session_id) is str
            and type(owner_id) is str
            and type(name) is str
            and (node_id is None or type(node_id) is str)
            and type(status) is str
            and status in _STATUSES
            and type(metadata) is dict
            and created_at is not None
            and updated_at is not None
            and type(version) is int
        ):
            return None
        return _JSON.to_json(
            {
                "id": session_id,
                "owner_id": owner_id,
                "name": name,
                "node_id": node_id,
                "status": status,
                "metadata": metadata,
                "created_at": created_at,
                "updated_at": updated_at,
                "started_at": started_at,
                "ended_at": ended_at,
                "version": version,
            }
        )


_STATUSES = frozenset(status.value for status in SessionStatus)


class SessionPage(BaseModel):
    """One page of GET /sessions."""

    items: list[Session]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")
