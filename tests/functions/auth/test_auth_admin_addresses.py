"""ADMIN_ADDRESSES are compared exactly with the address a wallet signs in with: an entry that
is not a TRON address in Base58Check (the hex form `41…`, a typo, a wrong checksum) would make
nobody admin without a word, so the auth function refuses to start with one, naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid.auth.signin import check_admin_addresses
from lucid.auth.tron import address_to_bytes
from lucid.config import Settings, SettingsError, get_settings
from lucid_edge.loader import HandlerLoadError, load_function_module
from tests.utils.wallets import Wallet

AUTH = Path(__file__).resolve().parents[3] / "functions" / "auth"
ADMIN = Wallet().address
HEX_FORM = address_to_bytes(ADMIN).hex()  # "41…": the same account, not its Base58Check text
TYPO = ADMIN[:-1] + ("A" if ADMIN[-1] != "A" else "B")  # one character off: the checksum fails


def test_every_entry_that_is_no_tron_address_is_named() -> None:
    # GIVEN a valid admin, the hex form of it and a typo of it
    settings = Settings(ADMIN_ADDRESSES=f"{ADMIN}, {HEX_FORM}, {TYPO}")
    # WHEN checked THEN entries 2 and 3 are refused, each with its reason
    with pytest.raises(SettingsError) as caught:
        check_admin_addresses(settings)
    hex_form, typo = caught.value.problems
    assert hex_form.startswith("ADMIN_ADDRESSES: entry 2 is not a TRON address in Base58Check")
    assert typo == (
        "ADMIN_ADDRESSES: entry 3 is not a TRON address in Base58Check "
        "(not a Base58Check TRON address: checksum does not match)"
    )
    # AND valid entries, or none, pass
    check_admin_addresses(Settings(ADMIN_ADDRESSES=ADMIN))
    check_admin_addresses(Settings(ADMIN_ADDRESSES=""))


@pytest.fixture
def admin_addresses(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ADMIN_ADDRESSES holding a typo, for a function loaded now (settings read afresh)."""
    monkeypatch.setenv("ADMIN_ADDRESSES", f"{ADMIN},{TYPO}")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("ADMIN_ADDRESSES")
    get_settings.cache_clear()


@pytest.mark.usefixtures("admin_addresses")
def test_the_auth_function_refuses_to_start_with_one() -> None:
    # WHEN the auth function cold-starts THEN it refuses, naming the entry and not a secret
    with pytest.raises(HandlerLoadError, match="entry 2 is not a TRON address"):
        load_function_module(AUTH, "app")
