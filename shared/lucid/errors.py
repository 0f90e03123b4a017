"""The gateway's one error tree, answered as RFC 9457 problem+json in one place.

    LucidError                      500  anything we did not classify
    ├── BadRequestError             400
    │   └── UnsafePathError         400  proxy path that could escape its backend
    ├── ValidationFailedError       422  body/query/path that fails its schema
    ├── AuthenticationError         401  (each sign-in failure has its own subclass)
    │   ├── MalformedMessageError, ForeignMessageError, UnknownNonceError,
    │   │   ExpiredChallengeError, NonceAddressMismatchError, BadSignatureError,
    │   │   SignerMismatchError, InvalidAddressError
    │   ├── InvalidTokenError       bad, expired, tampered or revoked JWT
    │   └── RefreshTokenReuseError  a used refresh token came back: family revoked
    ├── ForbiddenError              403
    ├── NotFoundError               404
    ├── ConflictError               409
    ├── PreconditionFailedError     412
    ├── PayloadTooLargeError        413
    ├── RateLimitedError            429  carries Retry-After
    ├── BadGatewayError             502
    ├── ServiceUnavailableError     503  dependency down, breaker open, not configured
    └── GatewayTimeoutError         504

Each class fixes `status`, `title` and a `type` slug; an instance adds `detail` and optional
`extensions` (extra problem members) and `headers`. Driver errors are translated into this tree at
the adapter boundary, never passed through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://lucid.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
# RFC 9457 section 3.1: the members every problem has. An extension of the same name would be
# overwritten by them in the body (a session's `status` became the HTTP status), so none may.
STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


class LucidError(Exception):
    """Base of every error the gateway turns into a problem+json response."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.extensions = dict(extensions or {})
        if clashing := STANDARD_MEMBERS & self.extensions.keys():
            raise ValueError(f"problem extensions may not redefine {sorted(clashing)}")
        self.headers = dict(headers or {})
        super().__init__(self.detail)

    @property
    def type(self) -> str:
        """The problem type URI."""
        return PROBLEM_TYPE_BASE + self.slug

    def to_problem(self, instance: str) -> dict[str, Any]:
        """The RFC 9457 body for this error at `instance` (the request path)."""
        body: dict[str, Any] = dict(self.extensions)
        body.update(
            type=self.type,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
        )
        return body


class BadRequestError(LucidError):
    status, title, slug = 400, "Bad Request", "bad-request"


class UnsafePathError(BadRequestError):
    slug = "unsafe-path"


class ValidationFailedError(LucidError):
    status, title, slug = 422, "Unprocessable Content", "validation"


class AuthenticationError(LucidError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class MalformedMessageError(AuthenticationError):
    slug = "malformed-sign-in-message"


class ForeignMessageError(AuthenticationError):
    slug = "foreign-sign-in-message"


class UnknownNonceError(AuthenticationError):
    slug = "unknown-nonce"


class ExpiredChallengeError(AuthenticationError):
    slug = "expired-challenge"


class NonceAddressMismatchError(AuthenticationError):
    slug = "nonce-address-mismatch"


class BadSignatureError(AuthenticationError):
    slug = "bad-signature"


class SignerMismatchError(AuthenticationError):
    slug = "signer-mismatch"


class InvalidAddressError(AuthenticationError):
    slug = "invalid-address"


class InvalidTokenError(AuthenticationError):
    slug = "invalid-token"


class RefreshTokenReuseError(AuthenticationError):
    slug = "refresh-token-reuse"


class ForbiddenError(LucidError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFoundError(LucidError):
    status, title, slug = 404, "Not Found", "not-found"


class ConflictError(LucidError):
    status, title, slug = 409, "Conflict", "conflict"


class PreconditionFailedError(LucidError):
    status, title, slug = 412, "Precondition Failed", "precondition-failed"


class PayloadTooLargeError(LucidError):
    status, title, slug = 413, "Content Too Large", "payload-too-large"


class RateLimitedError(LucidError):
    status, title, slug = 429, "Too Many Requests", "rate-limited"


class BadGatewayError(LucidError):
    status, title, slug = 502, "Bad Gateway", "bad-gateway"


class ServiceUnavailableError(LucidError):
    status, title, slug = 503, "Service Unavailable", "service-unavailable"


class GatewayTimeoutError(LucidError):
    status, title, slug = 504, "Gateway Timeout", "gateway-timeout"
