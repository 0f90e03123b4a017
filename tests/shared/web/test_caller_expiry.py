"""A function refuses an expired token even when API Gateway passes on an Allow it cached
before the token expired (AuthorizerTtlSeconds may outlast the token and its revocations)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from lucid.auth.revocation import RevocationList
from lucid.config import get_settings
from lucid.errors import InvalidTokenError
from lucid.identity import CallerIdentity, Role
from lucid.store import resp
from lucid.web import deps
from lucid.web.deps import check_sign_in
from lucid_edge.local import in_memory_database
from tests.utils.datastore import revocations_on


def _caller(expires_at: int) -> CallerIdentity:
    return CallerIdentity(
        user_id="u-1",
        address="TXyz",
        role=Role.USER,
        tier="authenticated",
        jti="j",
        expires_at=expires_at,
        session_id="s-1",
    )


@pytest.fixture
def revocations(store_redis: resp.Redis) -> RevocationList:
    return revocations_on(store_redis, in_memory_database())


def test_a_token_past_its_exp_and_the_leeway_is_refused(revocations: RevocationList) -> None:
    with pytest.raises(InvalidTokenError, match="expired"):
        check_sign_in(_caller(int(time.time()) - 31), revocations)


def test_a_live_token_within_the_leeway_passes(revocations: RevocationList) -> None:
    check_sign_in(_caller(int(time.time()) + 60), revocations)
    check_sign_in(_caller(int(time.time()) - 5), revocations)  # clock skew allowance


def test_the_expiry_boundary_is_the_authorizers(
    revocations: RevocationList, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a token whose exp plus the leeway is exactly now (the functions' clock only)
    leeway = get_settings().JWT_LEEWAY_SECONDS
    expires_at = int(time.time()) - leeway
    now = float(expires_at + leeway)
    monkeypatch.setattr(deps, "time", SimpleNamespace(time=lambda: now))
    # THEN it is refused as the authorizer's decoding refuses it: RFC 7519 section 4.1.4, exp is
    # the time "on or after which the JWT MUST NOT be accepted"; PyJWT's _validate_exp raises
    # when exp <= now - leeway
    with pytest.raises(InvalidTokenError, match="expired"):
        check_sign_in(_caller(expires_at), revocations)
    # AND a millisecond earlier it is still live
    monkeypatch.setattr(deps, "time", SimpleNamespace(time=lambda: now - 0.001))
    check_sign_in(_caller(expires_at), revocations)
