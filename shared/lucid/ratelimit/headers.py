"""Rate-limit response headers: the de facto X-RateLimit-* trio and the IETF draft's pair.

`RateLimit-Policy: "<policy>";q=<quota>;w=<window s>` and `RateLimit: "<policy>";r=<remaining>;
t=<s until the current window ends>` follow draft-ietf-httpapi-ratelimit-headers (-10/-11):
each is a Structured Fields list, so an inner, stricter policy (sign-in) and the tier can both be
listed. `X-RateLimit-Reset` is in seconds from now, like `t`, not an epoch. The window slides
(`lucid.ratelimit.window`): at the reset, what was used in the ending window is not whole again
but comes back gradually over the next one; `Retry-After` is the exact wait for one request.
On a refusal `t` is that wait (`r=0` for exactly that long): the draft's section 6 says a
Retry-After SHOULD NOT name a time earlier than the end of the effective window `t`, and the
sliding window often admits again before its fixed window ends.
"""

from __future__ import annotations

from lucid.ratelimit.limiter import Decision
from lucid.ratelimit.policies import Policy

_LIST_FIELDS = frozenset({b"ratelimit", b"ratelimit-policy"})


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The headers that describe `decision`; plus `Retry-After` when it is a refusal."""
    policy = decision.policy
    headers = {
        "X-RateLimit-Limit": str(policy.quota),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_seconds),
        "RateLimit-Policy": f'"{policy.name}";q={policy.quota};w={policy.window_seconds}',
        "RateLimit": f'"{policy.name}";r={decision.remaining};t={decision.reset_seconds}',
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after)
        headers["RateLimit"] = f'"{policy.name}";r=0;t={decision.retry_after}'
    return headers


RawHeaders = list[tuple[bytes, bytes]]


def merge_into(raw: RawHeaders, headers: dict[str, str]) -> RawHeaders:
    """ASGI `raw` headers plus `headers`: list fields are joined, others kept if already set.

    A response that already describes a stricter policy (a sign-in 429) keeps its numbers.
    """
    present = {name.lower(): index for index, (name, _) in enumerate(raw)}
    merged = list(raw)
    for name, value in headers.items():
        key = name.lower().encode("latin-1")
        index = present.get(key)
        if index is None:
            merged.append((key, value.encode("latin-1")))
        elif key in _LIST_FIELDS:
            merged[index] = (merged[index][0], merged[index][1] + b", " + value.encode("latin-1"))
    return merged


# An admission's headers as ASGI raw headers, by name: the lowercase names an ASGI response
# carries (starlette's init_headers lowercases its own).
_ADMISSION_NAMES = (
    b"x-ratelimit-limit",
    b"x-ratelimit-remaining",
    b"x-ratelimit-reset",
    b"ratelimit-policy",
    b"ratelimit",
)
_ADMISSION_NAME_SET = frozenset(_ADMISSION_NAMES)
# What a policy's headers say whatever the decision: (name, X-RateLimit-Limit, RateLimit-Policy),
# encoded once per policy (a process has a handful; the bound only guards against many).
_DESCRIBED: dict[Policy, tuple[bytes, bytes, bytes]] = {}
_DESCRIBED_MAX = 64


def admission_headers(decision: Decision) -> RawHeaders:
    """`rate_limit_headers(decision)` of an admitted request, as ASGI raw headers in the same
    order: what `merge_into` adds to a response that has none of them, built without the
    str dict, its lowercasing and encoding (~8 K instructions against ~33 K for both with
    merge_into; valgrind). A refusal (Retry-After, `r=0`) takes `rate_limit_headers`."""
    policy = decision.policy
    described = _DESCRIBED.get(policy)
    if described is None:
        if len(_DESCRIBED) >= _DESCRIBED_MAX:
            _DESCRIBED.clear()
        name = policy.name.encode("latin-1")
        described = _DESCRIBED[policy] = (
            name,
            str(policy.quota).encode("latin-1"),
            b'"%s";q=%d;w=%d' % (name, policy.quota, policy.window_seconds),
        )
    name, limit, policy_field = described
    remaining = b"%d" % decision.remaining
    reset = b"%d" % decision.reset_seconds
    return [
        (b"x-ratelimit-limit", limit),
        (b"x-ratelimit-remaining", remaining),
        (b"x-ratelimit-reset", reset),
        (b"ratelimit-policy", policy_field),
        (b"ratelimit", b'"%s";r=%s;t=%s' % (name, remaining, reset)),
    ]


def merge_raw(raw: RawHeaders, headers: RawHeaders) -> RawHeaders:
    """`raw` plus `admission_headers`' `headers`, merged as `merge_into` merges (list fields
    joined, others kept if already set); appended as they are when `raw` has none of them."""
    if _ADMISSION_NAME_SET.isdisjoint([name.lower() for name, _ in raw]):
        return [*raw, *headers]
    present = {name.lower(): index for index, (name, _) in enumerate(raw)}
    merged = list(raw)
    for key, value in headers:
        index = present.get(key)
        if index is None:
            merged.append((key, value))
        elif key in _LIST_FIELDS:
            merged[index] = (merged[index][0], merged[index][1] + b", " + value)
    return merged
