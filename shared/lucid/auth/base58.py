"""Base58 and Base58Check (Bitcoin alphabet), the text form of TRON addresses.

Base58Check appends the first four bytes of SHA-256(SHA-256(payload)) to the payload before
encoding; decoding verifies them. Errors are `Base58Error` (a `ValueError`) with a precise reason;
callers that face users translate them into their own error (see `lucid.auth.tron`).
"""

from __future__ import annotations

import hashlib

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
CHECKSUM_LENGTH = 4
_INDEX = {char: value for value, char in enumerate(ALPHABET)}


class Base58Error(ValueError):
    """Text that is not valid Base58 / Base58Check."""


def b58encode(data: bytes) -> str:
    """Base58 text of `data`; each leading zero byte becomes a leading '1'."""
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """The bytes `text` encodes; raises `Base58Error` on characters outside the alphabet."""
    number = 0
    for position, char in enumerate(text):
        value = _INDEX.get(char)
        if value is None:
            raise Base58Error(f"character {position + 1} is not in the Base58 alphabet")
        number = number * 58 + value
    leading_ones = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * leading_ones + body


def checksum(payload: bytes) -> bytes:
    """The 4-byte Base58Check checksum of `payload` (double SHA-256)."""
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:CHECKSUM_LENGTH]


def b58encode_check(payload: bytes) -> str:
    """Base58Check text of `payload`."""
    return b58encode(payload + checksum(payload))


def b58decode_check(text: str) -> bytes:
    """The payload of Base58Check `text`; `Base58Error` if it is too short or its checksum fails."""
    raw = b58decode(text)
    if len(raw) <= CHECKSUM_LENGTH:
        raise Base58Error("too short to hold a payload and its checksum")
    payload, check = raw[:-CHECKSUM_LENGTH], raw[-CHECKSUM_LENGTH:]
    if checksum(payload) != check:
        raise Base58Error("checksum does not match")
    return payload
