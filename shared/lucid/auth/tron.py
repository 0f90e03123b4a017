"""TRON addresses and message signatures (TronWeb/TronLink `signMessageV2`, legacy `trx.sign`).

    address   = Base58Check(0x41 || keccak256(uncompressed public key without 0x04)[-20:])
    v2 digest = keccak256(b"\\x19TRON Signed Message:\\n" || len(message) || message)
    v1 digest = keccak256(b"\\x19TRON Signed Message:\\n32" || message)  (always "32")
    signature = r(32) || s(32) || v(1), v in {27, 28} (0 and 1 accepted on input)

A text message is signed as its UTF-8 bytes under both schemes (a v1 client passes their hex to
`trx.sign`). Recovery always yields *some* key, even under the wrong scheme or message, so the
caller must compare the recovered address with the claimed one: `verify_signer` does that.
Parsing is strict and every failure is a `BadSignatureError` / `InvalidAddressError` whose detail
describes the problem without echoing the input.
"""

from __future__ import annotations

import re
from enum import StrEnum

from coincurve import PrivateKey, PublicKey

from lucid.auth.base58 import Base58Error, b58decode_check, b58encode_check
from lucid.auth.keccak import keccak256
from lucid.errors import BadSignatureError, InvalidAddressError, SignerMismatchError

ADDRESS_PREFIX = 0x41
ADDRESS_LENGTH = 34
# Base58 decoding is quadratic in the input length: refuse long text before decoding it.
MAX_ADDRESS_TEXT = 64
SIGNATURE_LENGTH = 65
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEADER = b"\x19TRON Signed Message:\n"
_HEX = re.compile(r"[0-9a-fA-F]*")
_RECOVERY_IDS = {0: 0, 1: 1, 27: 0, 28: 1}


class SignatureScheme(StrEnum):
    """How a wallet turned the message into the signed digest."""

    V2 = "v2"  # TronWeb / TronLink signMessageV2 (the default)
    V1 = "v1"  # legacy trx.sign(hexString)


def _message_bytes(message: str | bytes) -> bytes:
    return message.encode("utf-8") if isinstance(message, str) else message


def hash_message_v2(message: str | bytes) -> bytes:
    """The `signMessageV2` digest of `message` (text is taken as its UTF-8 bytes)."""
    data = _message_bytes(message)
    return keccak256(_HEADER + str(len(data)).encode("ascii") + data)


def hash_message_v1(message: str | bytes) -> bytes:
    """The legacy `trx.sign(hexString)` digest of the bytes the hex string stands for."""
    return keccak256(_HEADER + b"32" + _message_bytes(message))


def hash_message(message: str | bytes, scheme: SignatureScheme) -> bytes:
    """The digest `scheme` signs for `message`."""
    if scheme is SignatureScheme.V1:
        return hash_message_v1(message)
    return hash_message_v2(message)


def address_from_public_key(public_key: bytes) -> str:
    """The TRON address of a SEC1 public key (65-byte uncompressed, or 33-byte compressed)."""
    uncompressed = PublicKey(public_key).format(compressed=False)
    return address_from_bytes(bytes([ADDRESS_PREFIX]) + keccak256(uncompressed[1:])[-20:])


def private_key_bytes(private_key: bytes | str) -> bytes:
    """The 32 raw bytes of a private key given as bytes or hex (with or without 0x)."""
    if isinstance(private_key, str):
        text = private_key.removeprefix("0x")
        if len(text) != 64 or not _HEX.fullmatch(text):
            raise ValueError("a private key is 64 hex digits")
        private_key = bytes.fromhex(text)
    if len(private_key) != 32:
        raise ValueError("a private key is 32 bytes")
    return private_key


def address_from_private_key(private_key: bytes | str) -> str:
    """The TRON address that `private_key` (bytes or hex) controls."""
    key = PrivateKey(private_key_bytes(private_key))
    return address_from_public_key(key.public_key.format(compressed=False))


def address_from_bytes(raw: bytes) -> str:
    """Base58Check text of a 21-byte address (0x41 || 20 bytes)."""
    _check_raw_address(raw)
    return b58encode_check(raw)


def address_to_bytes(address: str) -> bytes:
    """The 21 bytes (0x41 || 20) of a Base58Check TRON address, else `InvalidAddressError`."""
    if len(address) > MAX_ADDRESS_TEXT:
        raise InvalidAddressError(f"a TRON address is {ADDRESS_LENGTH} characters")
    try:
        raw = b58decode_check(address)
    except Base58Error as error:
        raise InvalidAddressError(f"not a Base58Check TRON address: {error}") from None
    _check_raw_address(raw)
    return raw


def validate_address(address: str) -> str:
    """`address` itself if it is a valid TRON address, else `InvalidAddressError`."""
    address_to_bytes(address)
    return address


def _check_raw_address(raw: bytes) -> None:
    if len(raw) != 21:
        raise InvalidAddressError(f"a TRON address holds 21 bytes, this one holds {len(raw)}")
    if raw[0] != ADDRESS_PREFIX:
        raise InvalidAddressError("a TRON address starts with byte 0x41 (base58 'T')")


def parse_signature(signature: str) -> bytes:
    """The 65 bytes r || s || recovery id (0/1) of a hex signature, strictly checked."""
    text = signature[2:] if signature[:2] in ("0x", "0X") else signature
    if not _HEX.fullmatch(text):
        raise BadSignatureError("signature is not hexadecimal")
    if len(text) % 2:
        raise BadSignatureError("signature has an odd number of hex digits")
    if len(text) != 2 * SIGNATURE_LENGTH:
        raise BadSignatureError(
            f"signature must be {SIGNATURE_LENGTH} bytes (r || s || v), got {len(text) // 2}"
        )
    raw = bytes.fromhex(text)
    recovery_id = _RECOVERY_IDS.get(raw[64])
    if recovery_id is None:
        raise BadSignatureError("signature v must be 27 or 28 (or 0 or 1)")
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    if not (0 < r < SECP256K1_ORDER and 0 < s < SECP256K1_ORDER):
        raise BadSignatureError("signature r or s is outside the secp256k1 group order")
    if s > SECP256K1_ORDER // 2:
        # Wallets emit low-s (canonical) signatures; the high-s twin is a malleated copy.
        raise BadSignatureError("signature s is not canonical (high-s)")
    return raw[:64] + bytes([recovery_id])


def sign_message(
    private_key: bytes | str,
    message: str | bytes,
    scheme: SignatureScheme = SignatureScheme.V2,
) -> bytes:
    """The 65-byte signature r || s || v (v in {27, 28}) of `message` under `scheme`."""
    key = PrivateKey(private_key_bytes(private_key))
    compact = key.sign_recoverable(hash_message(message, scheme), hasher=None)
    return compact[:64] + bytes([compact[64] + 27])


def recover_address(
    message: str | bytes,
    signature: str,
    scheme: SignatureScheme = SignatureScheme.V2,
) -> str:
    """The TRON address whose key made `signature` (hex) over `message` under `scheme`."""
    compact = parse_signature(signature)
    try:
        public_key = PublicKey.from_signature_and_message(
            compact, hash_message(message, scheme), hasher=None
        )
    except ValueError:
        raise BadSignatureError("no public key recovers from this signature") from None
    return address_from_public_key(public_key.format(compressed=False))


def verify_signer(
    message: str | bytes,
    signature: str,
    address: str,
    scheme: SignatureScheme = SignatureScheme.V2,
) -> None:
    """Raise `SignerMismatchError` unless `signature` over `message` was made by `address`."""
    if recover_address(message, signature, scheme) != address:
        raise SignerMismatchError("the signature was not made by the claimed address")
