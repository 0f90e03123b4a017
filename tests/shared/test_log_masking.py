"""lucid.log_masking: which values count as secrets, and how an exception chain is masked."""

from __future__ import annotations

import logging

import pytest

from lucid.config import Settings
from lucid.log_masking import MASK, MaskedError, MaskSecrets, masked_exception, secret_values

KEY = "k" * 32
PREVIOUS_KEY = "p" * 32
PRIVATE_KEY = "s" * 32  # stands for a PEM text: masked whole, like the others


def test_secret_values_are_the_jwt_keys_and_the_store_passwords_as_written_and_decoded() -> None:
    settings = Settings(
        JWT_SECRET_KEY=KEY,
        JWT_PREVIOUS_SECRET_KEY=PREVIOUS_KEY,  # still verifying tokens for a token lifetime
        JWT_PRIVATE_KEY=PRIVATE_KEY,  # an RS256/ES256 signing key
        REDIS_URI="redis://:p%40ss-word@127.0.0.1:6379/0",
        MONGODB_URI="mongodb://lucid:hunter2@x@127.0.0.1/lucid",  # refused by pymongo: still known
    )
    assert set(secret_values(settings)) == {
        KEY,
        PREVIOUS_KEY,
        PRIVATE_KEY,
        "p%40ss-word",
        "p@ss-word",
        "hunter2@x",
    }


def test_uris_without_a_password_and_short_values_give_nothing() -> None:
    settings = Settings(
        JWT_SECRET_KEY=KEY, REDIS_URI="redis://127.0.0.1:6379/0", MONGODB_URI="mongodb://u:pw@h/d"
    )
    assert secret_values(settings) == [KEY]


@pytest.mark.parametrize(
    ("redis_password", "mongodb_password", "quoted", "shown"),
    [
        # a four-character password is the shortest masked: a three-character one is kept
        ("abcd", "xyz", "auth abcd / xyz failed", f"auth {MASK} / xyz failed"),
        # a password inside another (sorting after it) is masked after it, leaving nothing
        ("s3cret", "as3cret-x", "auth as3cret-x then s3cret", f"auth {MASK} then {MASK}"),
    ],
    ids=["shortest", "nested"],
)
def test_store_passwords_quoted_by_a_library_are_masked(
    redis_password: str, mongodb_password: str, quoted: str, shown: str
) -> None:
    settings = Settings(
        JWT_SECRET_KEY=KEY,
        REDIS_URI=f"redis://:{redis_password}@127.0.0.1:6379/0",
        MONGODB_URI=f"mongodb://lucid:{mongodb_password}@127.0.0.1/lucid",
    )
    assert MaskSecrets(secret_values(settings)).mask(quoted) == shown


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_each_link_of_a_chain_that_quotes_a_secret_is_masked_and_a_cycle_shown_once() -> None:
    mask = MaskSecrets([KEY]).mask
    inner = _raised(KeyError(f"no {KEY}"))
    outer = _raised(RuntimeError("lookup failed"))
    outer.__cause__ = inner
    inner.__cause__ = outer  # a cycle
    shown = masked_exception(outer, mask)
    assert isinstance(shown, MaskedError)
    assert str(shown) == "RuntimeError: lookup failed"
    assert shown.__traceback__ is outer.__traceback__
    assert str(shown.__cause__) == "KeyError: 'no " + MASK + "'"
    assert shown.__cause__ is not None
    assert shown.__cause__.__cause__ is None
    clean = _raised(ValueError("nothing secret"))
    assert masked_exception(clean, mask) is clean


def test_our_own_lines_without_an_exception_are_left_alone() -> None:
    record = logging.LogRecord("lucid.access", logging.INFO, __file__, 1, "%s", (KEY,), None)
    assert MaskSecrets([KEY]).filter(record)
    assert record.getMessage() == KEY


def test_a_malformed_library_line_reaches_the_handler_not_the_caller() -> None:
    # GIVEN a library logger whose handler has the masking filter, as every function's has
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    handler = Keep()
    handler.addFilter(MaskSecrets([KEY]))
    library = logging.getLogger("somelibrary.client")
    library.addHandler(handler)
    library.propagate = False  # only this handler (pytest's own would fail the test on the line)
    try:
        # WHEN the library makes a malformed logging call (two placeholders, one argument)
        library.warning("retrying %s after %s", "host")
    finally:
        library.removeHandler(handler)
        library.propagate = True
    # THEN the call returns (its handler reports it, as logging does) with the line kept
    assert [record.msg for record in kept] == ["retrying %s after %s"]
