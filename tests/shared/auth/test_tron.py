"""TRON addresses and signatures against the published vectors (tests/vectors, a copy of the
team handbook's ../shared/vectors kept in the repository so a fresh clone tests alone)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from lucid.auth.base58 import b58decode, b58encode, b58encode_check, checksum
from lucid.auth.keccak import keccak256
from lucid.auth.tron import (
    SECP256K1_ORDER,
    SignatureScheme,
    address_from_bytes,
    address_from_private_key,
    address_from_public_key,
    address_to_bytes,
    hash_message_v2,
    parse_signature,
    private_key_bytes,
    recover_address,
    sign_message,
    validate_address,
    verify_signer,
)
from lucid.errors import BadSignatureError, InvalidAddressError, SignerMismatchError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "vectors" / "tron_signatures.json").read_text()
)
ONE = "00" * 31 + "01"
ONE_ADDRESS = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"


def _message(vector: dict[str, Any]) -> str | bytes:
    if "message" in vector:
        return str(vector["message"])
    return bytes.fromhex(vector.get("message_bytes_hex") or vector["message_hex"])


def _source(vector: dict[str, Any]) -> str:
    return str(vector["source"])


@pytest.mark.parametrize("vector", VECTORS["v2"], ids=_source)
def test_v2_vector_recovers_signs_and_hashes(vector: dict[str, Any]) -> None:
    message = _message(vector)
    assert recover_address(message, vector["signature"], SignatureScheme.V2) == vector["address"]
    assert address_from_private_key(vector["private_key"]) == vector["address"]
    # RFC 6979 signing is deterministic: we produce the wallet's exact bytes.
    signature = sign_message(vector["private_key"], message, SignatureScheme.V2)
    assert "0x" + signature.hex() == "0x" + vector["signature"].removeprefix("0x")
    if "message_hash" in vector:
        assert hash_message_v2(message).hex() == vector["message_hash"]


@pytest.mark.parametrize("vector", VECTORS["v1"], ids=_source)
def test_v1_vector_recovers_and_signs(vector: dict[str, Any]) -> None:
    message = _message(vector)
    assert recover_address(message, vector["signature"], SignatureScheme.V1) == vector["address"]
    signature = sign_message(vector["private_key"], message, SignatureScheme.V1)
    assert signature.hex() == vector["signature"].removeprefix("0x")


@pytest.mark.parametrize("vector", VECTORS["key_to_address"], ids=_source)
def test_key_to_address_vector(vector: dict[str, Any]) -> None:
    address = address_from_private_key("0x" + vector["private_key"])
    assert address == vector["address"]
    assert address_to_bytes(address).hex() == vector["address_hex"]
    assert address_from_bytes(bytes.fromhex(vector["address_hex"])) == address


def test_pitfall_keccak_is_not_sha3() -> None:
    # GIVEN the empty input WHEN hashed THEN keccak256 differs from NIST SHA3-256.
    assert keccak256(b"").hex().startswith("c5d246")
    assert hashlib.sha3_256(b"").hexdigest().startswith("a7ffc6")


def test_pitfall_wrong_scheme_recovers_an_unrelated_address() -> None:
    # GIVEN a v2 signature checked as v1: recovery "works" but names someone else.
    vector = VECTORS["v2"][0]
    other = recover_address(vector["message"], vector["signature"], SignatureScheme.V1)
    assert other != vector["address"]
    validate_address(other)
    with pytest.raises(SignerMismatchError):
        verify_signer(vector["message"], vector["signature"], vector["address"], SignatureScheme.V1)
    verify_signer(vector["message"], vector["signature"], vector["address"], SignatureScheme.V2)


def test_pitfall_malleated_signature_is_refused() -> None:
    # GIVEN the n - s twin of a valid signature with v flipped (same key would recover)
    vector = VECTORS["v2"][0]
    raw = bytes.fromhex(vector["signature"][2:])
    s = int.from_bytes(raw[32:64], "big")
    twin = raw[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - raw[64]])
    # THEN it is refused as non-canonical instead of passing as a second valid signature
    with pytest.raises(BadSignatureError, match="high-s"):
        recover_address(vector["message"], twin.hex())


def test_the_highest_low_s_is_canonical_and_one_more_is_not() -> None:
    # GIVEN signatures whose s is (n - 1) / 2, the largest low s (n is odd), and (n + 1) / 2
    half = SECP256K1_ORDER // 2
    r = (1).to_bytes(32, "big")
    lowest_high = r + (half + 1).to_bytes(32, "big") + b"\x1b"
    highest_low = r + half.to_bytes(32, "big") + b"\x1b"
    # THEN the first is parsed as the canonical form a wallet emits, the second is its twin
    assert parse_signature(highest_low.hex()) == highest_low[:64] + b"\x00"
    with pytest.raises(BadSignatureError, match="high-s"):
        parse_signature(lowest_high.hex())


def test_signature_for_another_message_names_another_signer() -> None:
    vector = VECTORS["v2"][0]
    with pytest.raises(SignerMismatchError):
        verify_signer("hello world!", vector["signature"], vector["address"])


def test_signature_by_another_key_is_a_mismatch() -> None:
    signature = sign_message("22" * 32, "hello world").hex()
    with pytest.raises(SignerMismatchError):
        verify_signer("hello world", signature, ONE_ADDRESS)


@pytest.mark.parametrize("v", [0, 1])
def test_recovery_ids_zero_and_one_are_accepted(v: int) -> None:
    signature = sign_message(ONE, f"message {v}")
    raw = signature[:64] + bytes([signature[64] - 27])
    assert recover_address(f"message {v}", raw.hex()) == ONE_ADDRESS
    assert recover_address(f"message {v}", "0X" + raw.hex().upper()) == ONE_ADDRESS


_VALID = VECTORS["v2"][0]["signature"][2:]


@pytest.mark.parametrize(
    ("signature", "detail"),
    [
        (_VALID[:128], "must be 65 bytes (r || s || v), got 64"),
        (_VALID + "00", "must be 65 bytes (r || s || v), got 66"),
        ("", "must be 65 bytes (r || s || v), got 0"),
        (_VALID[:-1], "odd number of hex digits"),
        ("zz" + _VALID[2:], "not hexadecimal"),
        (_VALID[:64] + " " + _VALID[65:], "not hexadecimal"),
        ("0x0x" + _VALID[4:], "not hexadecimal"),
        (_VALID[:128] + "1d", "v must be 27 or 28"),
        (_VALID[:128] + "02", "v must be 27 or 28"),
        ("00" * 32 + _VALID[64:], "outside the secp256k1 group order"),
        (_VALID[:64] + "00" * 32 + "1c", "outside the secp256k1 group order"),
        ("ff" * 32 + _VALID[64:], "outside the secp256k1 group order"),
        # the order itself is outside too (the range is open at both ends)
        (f"{SECP256K1_ORDER:064x}" + _VALID[64:], "outside the secp256k1 group order"),
        (_VALID[:64] + f"{SECP256K1_ORDER:064x}" + "1c", "outside the secp256k1 group order"),
    ],
)
def test_malformed_signature_is_refused_precisely(signature: str, detail: str) -> None:
    with pytest.raises(BadSignatureError) as caught:
        recover_address("hello world", signature)
    assert detail in caught.value.detail


def test_r_that_is_no_curve_point_does_not_recover() -> None:
    # GIVEN r = 5: x^3 + 7 has no square root mod p, so no point has x = 5
    signature = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(BadSignatureError, match="no public key recovers"):
        recover_address("hello", signature.hex())


def test_public_key_forms_give_one_address() -> None:
    from coincurve import PrivateKey

    public = PrivateKey(bytes.fromhex(ONE)).public_key
    assert address_from_public_key(public.format(compressed=True)) == ONE_ADDRESS
    assert address_from_public_key(public.format(compressed=False)) == ONE_ADDRESS


@pytest.mark.parametrize(
    ("key", "reason"),
    [("12" * 31, "64 hex digits"), ("zz" * 32, "64 hex digits"), (b"\x01" * 31, "32 bytes")],
)
def test_bad_private_keys_are_refused(key: str | bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        private_key_bytes(key)


def _flip_last_char(address: str) -> str:
    return address[:-1] + ("A" if address[-1] != "A" else "B")


@pytest.mark.parametrize(
    ("address", "detail"),
    [
        (_flip_last_char(ONE_ADDRESS), "checksum does not match"),
        (ONE_ADDRESS[:10] + "0" + ONE_ADDRESS[11:], "character 11 is not in the Base58 alphabet"),
        (ONE_ADDRESS.replace("T", "l", 1), "character 1 is not in the Base58 alphabet"),
        ("", "too short"),
        # a checksum with nothing before it (4 bytes: the empty payload's checksum) is too
        # short, not an empty payload that then fails as an address of 0 bytes
        (b58encode(checksum(b"")), "too short to hold a payload and its checksum"),
        ("T" * 65, "is 34 characters"),
        (b58encode_check(b"\x42" + bytes(20)), "starts with byte 0x41"),
        (b58encode_check(b"\x41" + bytes(19)), "holds 20"),
        (b58encode_check(b"\x41" + bytes(21)), "holds 22"),
        ("0x" + "41" * 21, "not in the Base58 alphabet"),
    ],
)
def test_invalid_addresses_are_refused(address: str, detail: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        validate_address(address)
    assert detail in caught.value.detail


def test_address_from_bytes_checks_its_input() -> None:
    with pytest.raises(InvalidAddressError):
        address_from_bytes(b"\x00" * 21)


def test_base58_keeps_leading_zeros() -> None:
    for data in (b"", b"\0", b"\0\0\x01", b"\x41" + bytes(20), bytes(range(40))):
        assert b58decode(b58encode(data)) == data
    assert b58encode(b"\0\0\x01") == "112"


def _eip191_signature(private_key: str, prefix: bytes, message: bytes) -> str:
    """A wallet's signature of keccak256(prefix || message), r || s || v with v in {27, 28}."""
    from coincurve import PrivateKey

    compact = PrivateKey(bytes.fromhex(private_key)).sign_recoverable(
        keccak256(prefix + message), hasher=None
    )
    return (compact[:64] + bytes([compact[64] + 27])).hex()


_SIGN_IN = (
    "api.lucid.example wants you to sign in with your TRON account:\n"
    f"{ONE_ADDRESS}\n\nSign in to Lucid.\n\nURI: https://api.lucid.example\nVersion: 1\n"
    "Chain ID: mainnet\nNonce: 0123456789abcdef0123456789abcdef\n"
    "Issued At: 2026-11-03T10:00:00Z\nExpiration Time: 2026-11-03T10:05:00Z"
)


@pytest.mark.parametrize(
    "prefix",
    [
        # Ethereum personal_sign / eth_sign (EIP-191 version 0x45): the length in decimal
        b"\x19Ethereum Signed Message:\n" + str(len(_SIGN_IN.encode())).encode(),
        # TronWeb trx.sign(hex, key, useTronHeader=false): the Ethereum header, always "32"
        b"\x19Ethereum Signed Message:\n32",
        # the header TronWeb's source says v1 "should be" (0x15), which no wallet sends
        b"\x15TRON Signed Message:\n32",
    ],
    ids=["personal_sign", "trx.sign-eth-header", "0x15-header"],
)
@pytest.mark.parametrize("scheme", list(SignatureScheme))
def test_a_signature_under_another_prefix_is_not_a_tron_sign_in(
    prefix: bytes, scheme: SignatureScheme
) -> None:
    # GIVEN the key's signature of the sign-in text under a non-TRON prefix (the same key
    # controls an Ethereum account: an Ethereum site could ask for this very text)
    signature = _eip191_signature(ONE, prefix, _SIGN_IN.encode())
    # THEN it recovers some other key under both TRON schemes: another signer, refused
    with pytest.raises(SignerMismatchError):
        verify_signer(_SIGN_IN, signature, ONE_ADDRESS, scheme)


def test_a_signature_that_recovers_the_point_at_infinity_is_refused() -> None:
    # GIVEN r, s made so that s·R = e·G, i.e. Q = r⁻¹(s·R - e·G) is the point at infinity:
    # R = k·G, r = x(R), s = e·k⁻¹ mod n (k picked so that s is low and R's y gives v)
    from coincurve import PrivateKey

    digest = int.from_bytes(hash_message_v2("hello"), "big") % SECP256K1_ORDER
    for k in range(1, 100):
        point = PrivateKey(k.to_bytes(32, "big")).public_key.format(compressed=False)
        r = int.from_bytes(point[1:33], "big")
        s = digest * pow(k, -1, SECP256K1_ORDER) % SECP256K1_ORDER
        if r < SECP256K1_ORDER and 0 < s <= SECP256K1_ORDER // 2:
            break
    v = 27 + (point[64] & 1)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
    # WHEN recovering THEN no key recovers (not an address, not a crash)
    with pytest.raises(BadSignatureError, match="no public key recovers"):
        recover_address("hello", signature.hex())
