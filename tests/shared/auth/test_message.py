"""The EIP-4361-style TRON sign-in message: layout, parsing, and what makes one foreign."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lucid.auth.message import (
    MAX_MESSAGE_LENGTH,
    STATEMENT,
    build_message,
    check_ours,
    domain_of,
    parse_message,
)
from lucid.errors import ForeignMessageError, MalformedMessageError

URL = "https://api.lucid.example:8443"
ADDRESS = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"


def _message(service_url: str = URL, chain_id: str = "mainnet") -> str:
    return build_message(
        service_url=service_url,
        chain_id=chain_id,
        address=ADDRESS,
        nonce="0123456789abcdef0123456789abcdef",
        issued_at=datetime(2026, 11, 3, 10, 0, 0, tzinfo=UTC),
        expires_at=datetime(2026, 11, 3, 10, 5, 0, tzinfo=UTC),
    ).text()


def test_message_layout_is_the_documented_one() -> None:
    assert _message() == (
        "api.lucid.example:8443 wants you to sign in with your TRON account:\n"
        f"{ADDRESS}\n\n{STATEMENT}\n\n"
        f"URI: {URL}\nVersion: 1\nChain ID: mainnet\n"
        "Nonce: 0123456789abcdef0123456789abcdef\n"
        "Issued At: 2026-11-03T10:00:00Z\nExpiration Time: 2026-11-03T10:05:00Z"
    )


def test_parse_returns_what_build_made() -> None:
    parsed = parse_message(_message())
    assert parsed.text() == _message()
    assert parsed.expires() == datetime(2026, 11, 3, 10, 5, tzinfo=UTC)
    check_ours(parsed, service_url=URL, chain_id="mainnet")


def test_domain_is_the_authority_of_the_service_url() -> None:
    assert domain_of("http://127.0.0.1:8080") == "127.0.0.1:8080"
    assert domain_of("https://auth.lucid.example/v1") == "auth.lucid.example"


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        (lambda m: m + "\n", "not a TRON sign-in message"),
        (lambda m: m.replace("\n", "\r\n"), "not a TRON sign-in message"),
        (lambda m: m.replace("TRON account", "Ethereum account"), "not a TRON sign-in message"),
        (lambda m: m.replace("Nonce: 0123456789abcdef", "Nonce: 0123-"), "not a TRON sign-in"),
        (lambda m: m.replace("Version: 1", "Version: 2"), "version must be 1"),
        (lambda m: m.replace("10:05:00Z", "10:05:00+00:00"), "ISO 8601 UTC"),
        (lambda m: m.replace("2026-11-03T10:00:00Z", "yesterdayZ"), "ISO 8601 UTC"),
        (lambda m: "", "not a TRON sign-in message"),
    ],
)
def test_malformed_messages_are_refused(edit: object, detail: str) -> None:
    assert callable(edit)
    with pytest.raises(MalformedMessageError, match=detail):
        parse_message(edit(_message()))


@pytest.mark.parametrize(
    ("old", "new", "detail"),
    [
        ("api.lucid.example:8443 wants", "evil.example wants", "another domain"),
        (f"URI: {URL}", "URI: https://api.lucid.example:8443/phish", "another URI"),
        ("Chain ID: mainnet", "Chain ID: nile", "another chain"),
        (STATEMENT, "Transfer everything to the bearer.", "statement is not ours"),
    ],
)
def test_foreign_messages_are_refused(old: str, new: str, detail: str) -> None:
    parsed = parse_message(_message().replace(old, new))
    with pytest.raises(ForeignMessageError, match=detail):
        check_ours(parsed, service_url=URL, chain_id="mainnet")


def test_no_message_we_issue_is_also_a_message_of_the_other_tron_scheme() -> None:
    # v1 signs keccak(H + "32" + M), v2 keccak(H + len(M) + M) (H = "\x19TRON Signed Message:\n").
    # One digest stands for two messages when "32" + M == str(L) + M' with L == len(M'):
    # a v1 M then is a v2 M' = M[1:] when M starts with a digit d and len(M) == 321 + d, and a
    # v2 M is a v1 M' = str(len(M))[2:] + M when len(M) is 320..329 or 3200..3299. Login
    # takes both schemes, so our messages must stay out of those lengths: the shortest one we
    # can issue (one-letter host, one-character chain) is longer than 330 characters, and
    # login refuses anything longer than MAX_MESSAGE_LENGTH (< 3200).
    shortest = _message(service_url="http://a", chain_id="1")
    assert len(shortest.encode()) > 330
    assert MAX_MESSAGE_LENGTH < 3200
