"""Settings refuse what would be unsafe in a deployment and read the seed's variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lucid.config import Settings, ephemeral_secret

STRONG_KEY = "k" * 32


def test_seed_defaults_hold_when_nothing_is_configured() -> None:
    settings = Settings(JWT_SECRET_KEY=STRONG_KEY)
    assert settings.RATE_LIMIT_PUBLIC == 100
    assert settings.RATE_LIMIT_AUTHENTICATED == 1000
    assert settings.RATE_LIMIT_ADMIN == 10000
    assert settings.TOKEN_EXPIRE_MINUTES == 15
    assert settings.JWT_ALGORITHM == "HS256"
    assert settings.is_local


def test_comma_separated_lists_and_empty_strings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_ADDRESSES", "TAdminOne, TAdminTwo,")
    monkeypatch.setenv("BLOCKCHAIN_SERVICE_URL", "")
    settings = Settings()
    assert settings.ADMIN_ADDRESSES == ["TAdminOne", "TAdminTwo"]
    assert settings.BLOCKCHAIN_SERVICE_URL is None
    monkeypatch.setenv("ADMIN_ADDRESSES", "")
    assert Settings().ADMIN_ADDRESSES == []


@pytest.mark.parametrize("placeholder", ["changeme", "SECRET", "your-secret-key"])
def test_placeholder_secrets_are_refused_on_every_stage(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(JWT_SECRET_KEY=placeholder)


def test_outside_local_a_function_that_handles_no_token_needs_no_key() -> None:
    # Only sign-in and the authorizer get a key (infra/needs.yaml); they refuse to start
    # without one (tests/shared/auth/test_keys.py).
    assert Settings(STAGE="prod", JWT_SECRET_KEY=None).JWT_SECRET_KEY is None


def test_outside_local_a_short_hs256_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(STAGE="prod", JWT_SECRET_KEY="short-but-not-a-placeholder")


def test_outside_local_a_secret_reference_is_enough() -> None:
    settings = Settings(
        STAGE="prod", JWT_SECRET_KEY=None, JWT_SECRET_ARN="arn:aws:secretsmanager:x"
    )
    assert not settings.is_local


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = Settings(JWT_SECRET_KEY=STRONG_KEY, MONGODB_URI="mongodb://u:pw@db/x")
    assert STRONG_KEY not in repr(settings)
    assert "pw@" not in repr(settings)


def test_ephemeral_secrets_are_long_and_distinct() -> None:
    first, second = ephemeral_secret(), ephemeral_secret()
    assert first != second
    assert len(first.encode()) >= 32
