"""An admission's raw headers are byte for byte what merging its str headers gives."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from lucid.ratelimit.headers import (
    RawHeaders,
    admission_headers,
    merge_into,
    merge_raw,
    rate_limit_headers,
)
from lucid.ratelimit.limiter import Decision
from lucid.ratelimit.policies import Policy

_POLICIES = st.builds(
    Policy.of,
    st.sampled_from(["public", "authenticated", "admin", "signin-ip"]),
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=86_400),
    st.sampled_from([None, "dev", "prod"]),
)
_ADMISSIONS = st.builds(
    Decision,
    _POLICIES,
    st.just(True),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=86_400),
    st.just(0),
    st.sampled_from(["redis", "memory"]),
)
_NAMES = st.sampled_from(
    [
        b"content-type",
        b"content-length",
        b"etag",
        b"ratelimit",
        b"RateLimit-Policy",
        b"x-ratelimit-remaining",
        b"Retry-After",
    ]
)
# What a response may carry already: starlette's headers, or a sign-in refusal's own limits.
_RAW = st.lists(st.tuples(_NAMES, st.binary(min_size=1, max_size=20)), max_size=4)

_SIGNIN_REFUSAL: RawHeaders = [
    (b"content-type", b"application/problem+json"),
    (b"ratelimit-policy", b'"signin-ip";q=3;w=60'),
    (b"ratelimit", b'"signin-ip";r=0;t=42'),
    (b"x-ratelimit-remaining", b"0"),
]


@given(_ADMISSIONS, _RAW)
@example(Decision(Policy.of("public", 100, 60), True, 99, 60, 0, "redis"), [])
@example(Decision(Policy.of("public", 100, 60), True, 7, 3, 0, "redis"), _SIGNIN_REFUSAL)
def test_an_admissions_raw_headers_are_what_merge_into_gives(
    decision: Decision, raw: RawHeaders
) -> None:
    expected = merge_into(list(raw), rate_limit_headers(decision))
    assert merge_raw(list(raw), admission_headers(decision)) == expected


def test_a_policys_encoded_headers_follow_each_decision() -> None:
    policy = Policy.of("authenticated", 1000, 60)
    first = dict(admission_headers(Decision(policy, True, 999, 60, 0, "redis")))
    second = dict(admission_headers(Decision(policy, True, 5, 2, 0, "redis")))
    assert first[b"ratelimit"] == b'"authenticated";r=999;t=60'
    assert second[b"ratelimit"] == b'"authenticated";r=5;t=2'
    assert second[b"x-ratelimit-remaining"] == b"5"
    assert second[b"x-ratelimit-reset"] == b"2"
    assert second[b"ratelimit-policy"] == b'"authenticated";q=1000;w=60'
    other = dict(admission_headers(Decision(Policy.of("admin", 5000, 30), True, 1, 1, 0, "redis")))
    assert (other[b"ratelimit-policy"], other[b"x-ratelimit-limit"]) == (
        b'"admin";q=5000;w=30',
        b"5000",
    )
