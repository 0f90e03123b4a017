"""What clients may send about a user, and what they get back.

A client may change only its display name, email and preferences (`ProfilePatch` forbids every
other field, OWASP API3); roles change only through `RoleChange`, an admin route.
"""

# No `from __future__ import annotations` here: pydantic evaluates every string annotation of
# a model when it builds the model's schema at import (README, "Cold start of the built
# artifact").

from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from lucid.identity import Role
from lucid.store.documents import Document, Timestamp, check_json_object, iso
from lucid.store.json_object import JSON_OBJECT as _JSON
from lucid.store.text import NO_CONTROLS, NoControls

MAX_PREFERENCES_BYTES = 4 * 1024

DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=NO_CONTROLS),
    NoControls,
]
# Deliberately loose (one @, a dot in the domain, no spaces nor control characters): mail
# delivery is the real check.
_ADDRESS_PART = r"[^@\s\x00-\x1f\x7f-\x9f]"
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=254,
        pattern=rf"^{_ADDRESS_PART}{{1,64}}@{_ADDRESS_PART}+\.{_ADDRESS_PART}+$",
    ),
    NoControls,
]


def _preferences(value: dict[str, Any]) -> dict[str, Any]:
    return check_json_object(value, max_bytes=MAX_PREFERENCES_BYTES)


class ProfilePatch(BaseModel):
    """The body of PATCH /users/me. `null` clears display_name or email."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"display_name": "Ada", "email": "ada@example.com", "preferences": {}}]
        },
    )

    display_name: DisplayName | None = None
    email: Email | None = None
    preferences: Annotated[dict[str, Any], AfterValidator(_preferences)] | None = None

    @field_validator("preferences", mode="before")
    @classmethod
    def _preferences_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be an object (send {} to clear it)")
        return value


class RoleChange(BaseModel):
    """The body of PUT /users/{id}/role."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "admin"}]})

    role: Role


class User(BaseModel):
    """A user as the users routes return it (their own profile, or anyone's for an admin)."""

    id: str = Field(description="the user id (32 hex characters), the tokens' `sub`")
    address: str | None = Field(description="the TRON address the user signs in with")
    role: Role
    display_name: str | None
    email: str | None
    preferences: dict[str, Any] = Field(description="the client's own JSON object (<= 4 KB)")
    created_at: Timestamp | None = Field(description="the first sign-in")
    updated_at: Timestamp | None = Field(description="the last change of profile or role")
    last_login_at: Timestamp | None = Field(description="the last successful sign-in")

    @classmethod
    def from_document(cls, document: Document) -> Self:
        """The representation of a stored user."""
        return cls(
            id=document["_id"],
            address=document.get("address"),
            role=Role.parse(document.get("role")),
            display_name=document.get("display_name"),
            email=document.get("email"),
            preferences=document.get("preferences") or {},
            created_at=iso(document.get("created_at")),
            updated_at=iso(document.get("updated_at")),
            last_login_at=iso(document.get("last_login_at")),
        )

    @classmethod
    def json_of(cls, document: Document) -> bytes | None:
        """`from_document(document)` as GET /users/me answers it (FastAPI: the response model's
        `dump_json`), without building the model; None when a value is not of the exact type the
        model holds (`from_document` then validates, converts or refuses it, as before).

        The model validated each value, and FastAPI validated the model again before dumping it;
        this writes the same bytes from the values the model would hold, in the order of its
        fields (the role as `Role.parse` reads it, dumped as its value; no aliases; NaN and
        infinities in `preferences` as null, as the model's default config dumps them), as
        `Session.json_of` does for GET /sessions/{id}. The reads are from_document's, in its
        order, so a document without `_id` raises the same KeyError.
        """
        user_id = document["_id"]
        address = document.get("address")
        role = Role.parse(document.get("role"))
        display_name = document.get("display_name")
        email = document.get("email")
        preferences = document.get("preferences") or {}
        created_at = iso(document.get("created_at"))
        updated_at = iso(document.get("updated_at"))
        last_login_at = iso(document.get("last_login_at"))
        if not (
            type(user_id) is str
            and (address is None or type(address) is str)
            and (display_name is None or type(display_name) is str)
            and (email is None or type(email) is str)
            and type(preferences) is dict
        ):
            return None
        return _JSON.to_json(
            {
                "id": user_id,
                "address": address,
                "role": role.value,
                "display_name": display_name,
                "email": email,
                "preferences": preferences,
                "created_at": created_at,
                "updated_at": updated_at,
                "last_login_at": last_login_at,
            }
        )


class UserPage(BaseModel):
    """One page of GET /users."""

    items: list[User]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")
