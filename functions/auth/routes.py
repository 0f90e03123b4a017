"""POST /auth/challenge, /auth/login, /auth/verify, /auth/refresh, /auth/logout; GET /auth/status.

Only /auth/logout sits behind the authorizer; /auth/status is public and reads the Authorization
header itself. Field lengths are bounded so oversized input is a 422 before any work is done;
within the bounds, every refusal is the precise 401 the layer raises. A token is valid for
/auth/verify and /auth/status only while its sign-in is not revoked (`lucid.auth.revocation`).
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, Request, Response

from lucid.auth.authorizer import bearer_token
from lucid.auth.message import iso_utc
from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.revocation import RevocationList
from lucid.auth.schemas import (
    AccessClaims,
    AuthStatus,
    Challenge,
    ChallengeRequest,
    LoginRequest,
    RefreshRequest,
    StatusUser,
    TokenPair,
    VerifyRequest,
)
from lucid.auth.signin import SignInService
from lucid.auth.tokens import MAX_TOKEN_LENGTH, TokenClaims, get_token_service
from lucid.auth.tron import SignatureScheme
from lucid.errors import AuthenticationError, InvalidTokenError
from lucid.observability import count
from lucid.ratelimit import enforce_signin_limits
from lucid.store.indexes import ensure_indexes_once
from lucid.users.repository import UserRepository
from lucid.web.app import FunctionRouter
from lucid.web.database import DatabaseDep
from lucid.web.deps import (
    RedisDep,
    Revocations,
    SettingsDep,
    SourceIp,
    TokenCaller,
)
from lucid.web.openapi import problems
from lucid.web.stage import api_url

router = FunctionRouter()


async def signin_service(
    request: Request,
    settings: SettingsDep,
    redis: RedisDep,
    database: DatabaseDep,
    revocations: Revocations,
) -> SignInService:
    """The sign-in service on the process's clients, naming the API's URL as this request
    reached it when AUTH_SERVICE_URL is unset (`Settings.sign_in_url`)."""
    ensure_indexes_once(database)
    lifetime = timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS)
    return SignInService(
        settings,
        redis,
        UserRepository(database),
        RefreshTokenStore(database, lifetime, revocations),
        get_token_service(),
        api_url=api_url(request.scope),
    )


SignIn = Annotated[SignInService, Depends(signin_service)]


def _live_claims(token: str, revocations: RevocationList) -> TokenClaims:
    claims = get_token_service().decode(token)
    if revocations.is_revoked(claims.sid):
        raise InvalidTokenError("this sign-in was revoked")
    return claims


@router.post("/auth/challenge")  # a malformed address is the body's 422, never a 401
async def challenge(body: ChallengeRequest, signin: SignIn, ip: SourceIp) -> Challenge:
    """A message for the wallet to sign, with its single-use nonce."""
    enforce_signin_limits(ip, body.address)
    return signin.challenge(body.address)


@router.post(
    "/auth/login",
    responses=problems(
        401,
        descriptions={
            401: "Sign-in refused: each reason is its own problem type (malformed or foreign "
            "message, unknown, replayed or expired nonce, bad signature, another signer, ...)"
        },
    ),
)
async def login(body: LoginRequest, signin: SignIn, ip: SourceIp) -> TokenPair:
    """Tokens for a wallet that signed its challenge (signMessageV2, or legacy v1)."""
    enforce_signin_limits(ip, body.address)
    scheme = SignatureScheme(body.scheme)
    try:
        pair = signin.login(body.address, body.message, body.signature, scheme)
    except AuthenticationError:
        count("SignInRejected")
        raise
    count("SignInSucceeded")
    return pair


@router.post(
    "/auth/verify",
    responses=problems(401, descriptions={401: "The token is invalid, expired or revoked"}),
)
async def verify(body: VerifyRequest, revocations: Revocations) -> AccessClaims:
    """The claims of a valid access token of a live sign-in (401 otherwise)."""
    return AccessClaims.of(_live_claims(body.token, revocations))


@router.post(
    "/auth/refresh",
    responses=problems(
        401,
        descriptions={
            401: "Unknown or expired refresh token; a reused one revokes its whole sign-in"
        },
    ),
)
async def refresh(body: RefreshRequest, signin: SignIn) -> TokenPair:
    """A new pair for a refresh token, which is spent; reuse revokes the whole sign-in."""
    return signin.refresh(body.refresh_token)


@router.post("/auth/logout", status_code=204, response_class=Response, responses=problems(401))
async def logout(caller: TokenCaller, signin: SignIn) -> None:
    """End the caller's sign-in: its refresh tokens and every access token it issued."""
    if not caller.session_id:
        raise InvalidTokenError("the token names no sign-in; sign in again")
    signin.logout(caller.session_id)


@router.get("/auth/status")
async def status(
    revocations: Revocations,
    database: DatabaseDep,
    authorization: Annotated[str | None, Header(max_length=MAX_TOKEN_LENGTH + 16)] = None,
) -> AuthStatus:
    """Whether the request's bearer token is valid, for whom, and until when."""
    token = bearer_token(authorization)
    if token is None:
        return AuthStatus(authenticated=False)
    try:
        claims = _live_claims(token, revocations)
    except InvalidTokenError:
        return AuthStatus(authenticated=False)
    user = UserRepository(database).find_by_id(claims.sub)
    if user is None:
        return AuthStatus(authenticated=False)
    return AuthStatus(
        authenticated=True,
        user=StatusUser(
            id=user["_id"], address=user["address"], role=claims.role, tier=claims.tier
        ),
        expires_at=iso_utc(datetime.fromtimestamp(claims.exp, UTC)),
    )
