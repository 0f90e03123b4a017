"""Who is counted against which quota: the tiers and sign-in policies, read from settings.

Identity comes only from what API Gateway vouches for: the Lambda authorizer's context
(`requestContext.authorizer.lambda`) and the connection's `requestContext.http.sourceIp`.
Client headers (X-Forwarded-For, X-User-Id, ...) never choose the key. An IPv6 source is
counted by its /64 (`client_network`).
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import functools
import hashlib
import ipaddress
import re
from typing import NamedTuple, Self

from lucid.config import Settings
from lucid.identity import CallerIdentity, Tier
from lucid.ratelimit.window import MICROS
from lucid.store.keys import rate_limit_prefix

UNKNOWN_IP = "unknown"
_PLAIN_IDENTITY = re.compile(r"[A-Za-z0-9._:@/-]{1,64}")
# One IPv6 subscriber gets a /64 at the very least (RFC 6177: an end site is assigned a /64 or
# shorter; /56 and /48 are common) and picks any address in it at will (SLAAC, RFC 8981
# temporary addresses). Counting single addresses would give it 2^64 budgets and as many Redis
# keys; GitLab's per-IP limits (ipv6_rate_limit_prefix_length, default 64) count the same /64.
IPV6_PREFIX = 64


def client_network(source_ip: str) -> str:
    """What a client at `source_ip` is counted as: an IPv4 address itself (IPv4-mapped IPv6
    too), an IPv6 address as its /64 (`2001:db8:1:2::/64`), anything else unchanged."""
    if ":" not in source_ip:
        return source_ip  # IPv4, as API Gateway writes it: parsing it costs ~6 us per request
    return _ipv6_network(source_ip)


@functools.lru_cache(maxsize=1024)
def _ipv6_network(source_ip: str) -> str:
    try:
        address = ipaddress.IPv6Address(source_ip)
    except ValueError:
        return source_ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address.packed, IPV6_PREFIX), strict=False))


class Policy(NamedTuple):
    """A named quota: `quota` requests per `window_seconds` (made by `Policy.of`)."""

    name: str
    quota: int
    window_seconds: int
    # Whose budget: the stage's key prefix (lucid.store.keys; the process's STAGE when None).
    stage: str | None
    window_us: int
    prefix: str

    @classmethod
    def of(cls, name: str, quota: int, window_seconds: int, stage: str | None = None) -> Self:
        """The policy, with its window in microseconds and its keys' prefix worked out once."""
        prefix = rate_limit_prefix(stage) + name + ":"
        return cls(name, quota, window_seconds, stage, window_seconds * MICROS, prefix)

    def key(self, identity: str) -> str:
        """The Redis key of `identity` under this policy (bounded length whatever it is)."""
        if not _PLAIN_IDENTITY.fullmatch(identity):
            identity = "sha256:" + hashlib.sha256(identity.encode()).hexdigest()[:32]
        return self.prefix + identity


class Policies(NamedTuple):
    """Every policy of the gateway, built from one `Settings`."""

    public: Policy
    authenticated: Policy
    admin: Policy
    signin_ip: Policy
    signin_address: Policy

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The tiers and sign-in limits configured in `settings`, all over one window."""
        window, stage = settings.RATE_LIMIT_WINDOW_SECONDS, settings.STAGE
        return cls(
            public=Policy.of(Tier.PUBLIC.value, settings.RATE_LIMIT_PUBLIC, window, stage),
            authenticated=Policy.of(
                Tier.AUTHENTICATED.value, settings.RATE_LIMIT_AUTHENTICATED, window, stage
            ),
            admin=Policy.of(Tier.ADMIN.value, settings.RATE_LIMIT_ADMIN, window, stage),
            signin_ip=Policy.of("signin-ip", settings.RATE_LIMIT_SIGNIN_PER_IP, window, stage),
            signin_address=Policy.of(
                "signin-address", settings.RATE_LIMIT_SIGNIN_PER_ADDRESS, window, stage
            ),
        )

    def for_request(
        self, caller: CallerIdentity | None, source_ip: str | None, peer: str | None = None
    ) -> tuple[Policy, str]:
        """The tier and the identity counted for a request from `caller` at `source_ip`.

        Signed-in callers by user id (admins at the admin tier), everyone else by source IP
        (`client_network`: an IPv6 one by its /64); `peer` (the TCP peer) stands in for it when
        there is no API Gateway event at all.
        """
        if caller is not None:
            return (self.admin if caller.is_admin else self.authenticated), caller.user_id
        return self.public, client_network(source_ip or peer or UNKNOWN_IP)
