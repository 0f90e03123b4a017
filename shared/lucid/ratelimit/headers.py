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
