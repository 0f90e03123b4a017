"""What clients send to the auth routes, and what they get back.

Request models forbid unknown fields and bound every length, so oversized input is a 422 before
any work is done (a signature or token is never echoed back: see `lucid.web.problems`).
"""

# No `from __future__ import annotations` here: pydantic evaluates every string annotation of
# a model when it builds the model's schema at import (README, "Cold start of the built
# artifact").

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from lucid.auth.message import MAX_MESSAGE_LENGTH
from lucid.auth.tokens import MAX_TOKEN_LENGTH, TokenClaims
from lucid.auth.tron import MAX_ADDRESS_TEXT, validate_address
from lucid.errors import InvalidAddressError
from lucid.identity import Role
from lucid.store.documents import Timestamp

# "0x" + 65 bytes is 132 characters; a little more lets 66-byte signatures reach the precise 401.
MAX_SIGNATURE_TEXT = 140


def _tron_address(value: str) -> str:
    # A malformed address is a malformed request (422 naming the field), not a failed sign-in.
    try:
        return validate_address(value)
    except InvalidAddressError as error:
        raise ValueError(error.detail) from None


Address = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ADDRESS_TEXT,
        description="TRON address in Base58Check",
        examples=["TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"],
    ),
    AfterValidator(_tron_address),
]
Token = Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChallengeRequest(_Request):
    """The body of POST /auth/challenge."""

    address: Address


class LoginRequest(_Request):
    """The body of POST /auth/login: the challenge message as the wallet signed it."""

    address: Address
    message: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_MESSAGE_LENGTH,
            description="the exact `message` of the challenge",
        ),
    ]
    signature: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_SIGNATURE_TEXT,
            description="65-byte r||s||v signature, hex (with or without 0x)",
        ),
    ]
    scheme: Literal["v2", "v1"] = Field(
        default="v2", description="v2: TronWeb signMessageV2; v1: legacy trx.sign"
    )


class VerifyRequest(_Request):
    """The body of POST /auth/verify."""

    token: Token = Field(description="an access token")


class RefreshRequest(_Request):
    """The body of POST /auth/refresh."""

    refresh_token: Token = Field(description="the refresh token of the last pair")


class Challenge(BaseModel):
    """A sign-in challenge: the message for the wallet to sign, with its single-use nonce."""

    nonce: str = Field(description="128 random bits, hex; spent by the first login that names it")
    message: str = Field(description="the EIP-4361-style text to sign, byte for byte")
    issued_at: Timestamp
    expires_at: Timestamp = Field(description="after this the nonce is refused (401)")


class TokenPair(BaseModel):
    """What a successful login or refresh returns (OAuth 2.0 token response fields)."""

    access_token: str = Field(description="a JWT for `Authorization: Bearer`")
    refresh_token: str = Field(description="opaque and single use; rotated by /auth/refresh")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth token type
    expires_in: int = Field(description="lifetime of the access token in seconds")


class AccessClaims(BaseModel):
    """The claims of a valid access token (also what POST /auth/verify answers)."""

    model_config = ConfigDict(frozen=True)

    iss: str = Field(description="issuer (JWT_ISSUER)")
    aud: str = Field(description="audience (JWT_AUDIENCE)")
    sub: str = Field(description="the user id")
    addr: str = Field(description="the TRON address the user signed in with")
    role: Role
    tier: str = Field(description="the rate-limit tier of the caller")
    iat: int = Field(description="issued at, seconds since the epoch")
    nbf: int = Field(description="not before, seconds since the epoch")
    exp: int = Field(description="expires at, seconds since the epoch")
    jti: str = Field(description="the token's id")
    sid: str = Field(description="the sign-in it belongs to (what logout and reuse revoke)")
    typ: Literal["access"]

    @classmethod
    def of(cls, claims: TokenClaims) -> Self:
        """The answer for `claims`, as `lucid.auth.tokens` decoded them."""
        return cls(**claims._asdict())


class StatusUser(BaseModel):
    """Who a valid token belongs to, as GET /auth/status reports it."""

    id: str = Field(description="the user id (the token's `sub`)")
    address: str
    role: Role = Field(description="the role the token carries")
    tier: str = Field(description="the rate-limit tier the token carries")


class AuthStatus(BaseModel):
    """Whether the request's bearer token is valid, for whom, and until when."""

    authenticated: bool
    user: StatusUser | None = Field(default=None, description="null unless authenticated")
    expires_at: Timestamp | None = Field(
        default=None, description="the token's expiry; null unless authenticated"
    )
