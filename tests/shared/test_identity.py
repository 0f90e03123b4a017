"""The caller and the source IP, read only from what API Gateway vouches for."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from lucid.identity import (
    CallerIdentity,
    Role,
    Tier,
    caller_from_event,
    source_ip_from_event,
    tier_for_role,
)
from tests.utils.events import http_event

CONTEXT = {"user_id": "u1", "address": "TX", "role": "admin", "tier": "admin", "jti": "j1"}


def test_the_caller_comes_from_the_authorizer_context() -> None:
    event = http_event("GET", "/x", authorizer={**CONTEXT, "exp": 1_900_000_000})
    assert caller_from_event(event) == CallerIdentity(
        "u1", "TX", Role.ADMIN, "admin", "j1", expires_at=1_900_000_000
    )


def test_each_field_of_the_caller_comes_from_its_own_key_of_the_context() -> None:
    context = {
        "user_id": "u7",
        "address": "TQ",
        "role": "user",
        "tier": "authenticated",
        "jti": "j7",
        "exp": "1900000001",
        "sid": "s7",
    }
    caller = caller_from_event(http_event("GET", "/x", authorizer=context))
    assert caller is not None
    assert caller._asdict() == {
        "user_id": "u7",
        "address": "TQ",
        "role": Role.USER,
        "tier": "authenticated",
        "jti": "j7",
        "expires_at": 1_900_000_001,
        "session_id": "s7",
    }
    # Any mapping holds a context, not only the dict parsed JSON gives; missing keys are empty.
    lone = {"requestContext": MappingProxyType({"authorizer": {"lambda": {"user_id": 12}}})}
    assert caller_from_event(lone) == CallerIdentity("12", "", Role.USER, "authenticated", "")
    proxied = {"requestContext": {"authorizer": MappingProxyType({"lambda": context})}}
    assert caller_from_event(proxied) == caller


@pytest.mark.parametrize(
    ("value", "expected"),
    [("admin", Role.ADMIN), (Role.ADMIN, Role.ADMIN), ("Admin", Role.USER), (["admin"], Role.USER)],
)
def test_a_role_is_admin_only_when_named_admin(value: object, expected: Role) -> None:
    assert Role.parse(value) is expected


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"requestContext": "nope"},
        {"requestContext": {"authorizer": {"lambda": {"address": "TX"}}}},
        {"requestContext": {"authorizer": ["lambda"]}},
        http_event("GET", "/x", headers={"x-user-id": "u1", "x-lucid-role": "admin"}),
    ],
)
def test_without_an_authorizer_context_there_is_no_caller(event: Any) -> None:
    assert caller_from_event(event) is None


@pytest.mark.parametrize(("role", "expected"), [("admin", Role.ADMIN), ("root", Role.USER)])
def test_an_unknown_role_is_the_least_privileged_one(role: str, expected: Role) -> None:
    caller = caller_from_event(http_event("GET", "/x", authorizer={**CONTEXT, "role": role}))
    assert caller is not None
    assert (caller.role, caller.is_admin) == (expected, expected is Role.ADMIN)


@pytest.mark.parametrize("exp", ["soon", None, [1]])
def test_an_unreadable_expiry_is_no_expiry(exp: Any) -> None:
    caller = caller_from_event(http_event("GET", "/x", authorizer={**CONTEXT, "exp": exp}))
    assert caller is not None
    assert caller.expires_at is None


def test_the_source_ip_comes_from_the_connection_only() -> None:
    event = http_event(
        "GET", "/x", source_ip="203.0.113.9", headers={"x-forwarded-for": "10.0.0.1"}
    )
    assert source_ip_from_event(event) == "203.0.113.9"
    assert source_ip_from_event({"requestContext": {}}) is None


def test_each_role_signs_in_at_its_tier() -> None:
    assert tier_for_role(Role.ADMIN) is Tier.ADMIN
    assert tier_for_role(Role.USER) is Tier.AUTHENTICATED
