"""TRON wallets for tests: a key, its address, and signatures as TronWeb would make them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from lucid.auth.tron import SignatureScheme, address_from_private_key, sign_message


@dataclass(frozen=True)
class Wallet:
    """A private key and the address it controls."""

    private_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def address(self) -> str:
        """The wallet's Base58Check address."""
        return address_from_private_key(self.private_key)

    def sign(self, message: str, scheme: SignatureScheme = SignatureScheme.V2) -> str:
        """`0x`-prefixed hex signature of `message` (signMessageV2 unless `scheme` says v1)."""
        return "0x" + sign_message(self.private_key, message, scheme).hex()
