"""Keccak-256 in pure Python: the hash TRON and Ethereum use for addresses and signed messages.

This is Keccak[r=1088, c=512] as submitted to round 3 of the SHA-3 competition, with its original
padding. NIST's SHA3-256 (`hashlib.sha3_256`) runs the same permutation and rate but starts its
padding with domain bits (0x06 instead of 0x01), so its digests differ for every input.

Written here rather than installed: pycryptodome added 11 MB to the Lambda layer for this one
function, and ~30 ms to the first sign-in after each cold start (its import). `hashlib` offers
Keccak only when Python links OpenSSL 3.2+ (Lambda's python3.11 runs on Amazon Linux 2, whose
OpenSSL is 1.x), and `cryptography` bundles a newer OpenSSL but does not expose Keccak. A sign-in
hashes about 400 bytes, four permutations: 0.8-0.9 ms of pure Python on our 2-core machine, paid
by POST /auth/login alone. The measurements are in the commit that added this module.

Lanes are 64-bit integers in a flat list indexed `x + 5 * y`, read and written little-endian.
"""

from __future__ import annotations

import struct

RATE = 136  # bytes absorbed per permutation: 1600-bit state minus the 512-bit capacity
DIGEST_SIZE = 32
KECCAK_SUFFIX = 0x01  # Keccak as submitted: pad10*1 and nothing else
SHA3_SUFFIX = 0x06  # FIPS 202 SHA3-*: domain bits 01, then pad10*1
_MASK = (1 << 64) - 1
_BLOCK = struct.Struct(f"<{RATE // 8}Q")
_DIGEST = struct.Struct(f"<{DIGEST_SIZE // 8}Q")


def _round_constants() -> tuple[int, ...]:
    # Bit 2**j - 1 of round i's constant is bit 7*i + j of the LFSR x**t mod
    # (x**8 + x**6 + x**5 + x**4 + 1), as the Keccak reference defines them.
    constants = []
    register = 1
    for _ in range(24):
        constant = 0
        for j in range(7):
            if register & 1:
                constant |= 1 << ((1 << j) - 1)
            register = ((register << 1) ^ (0x71 if register & 0x80 else 0)) & 0xFF
        constants.append(constant)
    return tuple(constants)


_ROUND_CONSTANTS = _round_constants()


def keccak256(data: bytes) -> bytes:
    """The 32-byte Keccak-256 digest of `data` (not NIST SHA3-256, which pads differently)."""
    return sponge256(data, KECCAK_SUFFIX)


def sponge256(data: bytes, suffix: int) -> bytes:
    """32 bytes squeezed from Keccak-f[1600] at rate 136 after absorbing `data`, padded with
    `suffix` (the first padding byte, with any domain bits), zeros, and a final 1 bit.

    `KECCAK_SUFFIX` gives Keccak-256 and `SHA3_SUFFIX` gives NIST SHA3-256, which is how the tests
    check this permutation against OpenSSL's for every length around the rate boundary.
    """
    padded = bytearray(data)
    padded += bytes([suffix]) + bytes(RATE - 1 - len(data) % RATE)
    padded[-1] |= 0x80
    state = [0] * 25
    for offset in range(0, len(padded), RATE):
        for index, lane in enumerate(_BLOCK.unpack_from(padded, offset)):
            state[index] ^= lane
        _permute(state)
    return _DIGEST.pack(*state[: DIGEST_SIZE // 8])


def _permute(state: list[int]) -> None:
    """Keccak-f[1600] on `state` in place, unrolled: a loop over lanes costs ~1.5x the time."""
    m = _MASK
    (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12,
     a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, a24) = state  # fmt: skip
    for constant in _ROUND_CONSTANTS:
        # theta: every lane takes in the parities of the two neighbouring columns.
        c0 = a0 ^ a5 ^ a10 ^ a15 ^ a20
        c1 = a1 ^ a6 ^ a11 ^ a16 ^ a21
        c2 = a2 ^ a7 ^ a12 ^ a17 ^ a22
        c3 = a3 ^ a8 ^ a13 ^ a18 ^ a23
        c4 = a4 ^ a9 ^ a14 ^ a19 ^ a24
        d0 = c4 ^ (((c1 << 1) | (c1 >> 63)) & m)
        d1 = c0 ^ (((c2 << 1) | (c2 >> 63)) & m)
        d2 = c1 ^ (((c3 << 1) | (c3 >> 63)) & m)
        d3 = c2 ^ (((c4 << 1) | (c4 >> 63)) & m)
        d4 = c3 ^ (((c0 << 1) | (c0 >> 63)) & m)
        # rho and pi: lane (x, y) rotated by its offset moves to (y, 2x + 3y); b is (x', y').
        b0 = a0 ^ d0
        b1 = (((t := a6 ^ d1) << 44) | (t >> 20)) & m
        b2 = (((t := a12 ^ d2) << 43) | (t >> 21)) & m
        b3 = (((t := a18 ^ d3) << 21) | (t >> 43)) & m
        b4 = (((t := a24 ^ d4) << 14) | (t >> 50)) & m
        b5 = (((t := a3 ^ d3) << 28) | (t >> 36)) & m
        b6 = (((t := a9 ^ d4) << 20) | (t >> 44)) & m
        b7 = (((t := a10 ^ d0) << 3) | (t >> 61)) & m
        b8 = (((t := a16 ^ d1) << 45) | (t >> 19)) & m
        b9 = (((t := a22 ^ d2) << 61) | (t >> 3)) & m
        b10 = (((t := a1 ^ d1) << 1) | (t >> 63)) & m
        b11 = (((t := a7 ^ d2) << 6) | (t >> 58)) & m
        b12 = (((t := a13 ^ d3) << 25) | (t >> 39)) & m
        b13 = (((t := a19 ^ d4) << 8) | (t >> 56)) & m
        b14 = (((t := a20 ^ d0) << 18) | (t >> 46)) & m
        b15 = (((t := a4 ^ d4) << 27) | (t >> 37)) & m
        b16 = (((t := a5 ^ d0) << 36) | (t >> 28)) & m
        b17 = (((t := a11 ^ d1) << 10) | (t >> 54)) & m
        b18 = (((t := a17 ^ d2) << 15) | (t >> 49)) & m
        b19 = (((t := a23 ^ d3) << 56) | (t >> 8)) & m
        b20 = (((t := a2 ^ d2) << 62) | (t >> 2)) & m
        b21 = (((t := a8 ^ d3) << 55) | (t >> 9)) & m
        b22 = (((t := a14 ^ d4) << 39) | (t >> 25)) & m
        b23 = (((t := a15 ^ d0) << 41) | (t >> 23)) & m
        b24 = (((t := a21 ^ d1) << 2) | (t >> 62)) & m
        # chi (the only non-linear step) along each row, then iota on lane (0, 0).
        a0 = b0 ^ (~b1 & b2) ^ constant
        a1 = b1 ^ (~b2 & b3)
        a2 = b2 ^ (~b3 & b4)
        a3 = b3 ^ (~b4 & b0)
        a4 = b4 ^ (~b0 & b1)
        a5 = b5 ^ (~b6 & b7)
        a6 = b6 ^ (~b7 & b8)
        a7 = b7 ^ (~b8 & b9)
        a8 = b8 ^ (~b9 & b5)
        a9 = b9 ^ (~b5 & b6)
        a10 = b10 ^ (~b11 & b12)
        a11 = b11 ^ (~b12 & b13)
        a12 = b12 ^ (~b13 & b14)
        a13 = b13 ^ (~b14 & b10)
        a14 = b14 ^ (~b10 & b11)
        a15 = b15 ^ (~b16 & b17)
        a16 = b16 ^ (~b17 & b18)
        a17 = b17 ^ (~b18 & b19)
        a18 = b18 ^ (~b19 & b15)
        a19 = b19 ^ (~b15 & b16)
        a20 = b20 ^ (~b21 & b22)
        a21 = b21 ^ (~b22 & b23)
        a22 = b22 ^ (~b23 & b24)
        a23 = b23 ^ (~b24 & b20)
        a24 = b24 ^ (~b20 & b21)
    state[:] = (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12,
                a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, a24)  # fmt: skip
