"""Signing in to a running gateway the way a wallet does, for the benchmarks."""

from __future__ import annotations

import secrets
import statistics
import time
from dataclasses import dataclass

import httpx

from lucid.auth.tron import address_from_private_key, sign_message


@dataclass(frozen=True)
class Wallet:
    """A fresh TRON key pair."""

    private_key: bytes
    address: str

    @classmethod
    def new(cls) -> Wallet:
        """A random key (never reused across runs)."""
        key = secrets.token_bytes(32)
        return cls(key, address_from_private_key(key))


def sign_in(client: httpx.Client, wallet: Wallet) -> dict[str, str]:
    """Challenge -> signMessageV2 -> login; the token pair."""
    challenge = client.post("/auth/challenge", json={"address": wallet.address})
    challenge.raise_for_status()
    message = challenge.json()["message"]
    signature = "0x" + sign_message(wallet.private_key, message).hex()
    login = client.post(
        "/auth/login",
        json={"address": wallet.address, "message": message, "signature": signature},
    )
    login.raise_for_status()
    tokens: dict[str, str] = login.json()
    return tokens


def login_latencies(base_url: str, count: int) -> dict[str, float]:
    """p50/p99 milliseconds of POST /auth/login alone and of the whole sign-in, sequentially."""
    login_ms: list[float] = []
    whole_ms: list[float] = []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(count):
            wallet = Wallet.new()
            started = time.perf_counter()
            challenge = client.post("/auth/challenge", json={"address": wallet.address}).json()
            signature = "0x" + sign_message(wallet.private_key, challenge["message"]).hex()
            before_login = time.perf_counter()
            response = client.post(
                "/auth/login",
                json={
                    "address": wallet.address,
                    "message": challenge["message"],
                    "signature": signature,
                },
            )
            done = time.perf_counter()
            response.raise_for_status()
            login_ms.append((done - before_login) * 1000)
            whole_ms.append((done - started) * 1000)
    return {
        "login_p50_ms": statistics.median(login_ms),
        "login_p99_ms": statistics.quantiles(login_ms, n=100)[98],
        "sign_in_p50_ms": statistics.median(whole_ms),
    }
