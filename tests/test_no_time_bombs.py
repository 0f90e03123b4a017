"""No test parameter is a moment fixed when pytest collected it.

Parameters are built at collection, minutes before a test runs in a full `make test`. A token
whose `nbf` lies 120 s ahead, or a deadline computed from `time.time()`, stops meaning what the
test says once the suite takes longer than that to get there: `test_bad_tokens_are_denied
[nbf-future]` failed that way in a fresh clone's first run. Time-relative values belong in the
test body (or behind a `lambda` the test calls), or on a clock the test controls. This looks at
every parametrized test collected with it and names the parameters that hold such a value: a
JWT with a time claim, a datetime, or a Unix time within a day of now.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest

_TIME_CLAIMS = ("exp", "nbf", "iat")
_DAY = 24 * 3600


def _values(value: Any) -> Iterator[Any]:
    """`value` and, for containers, everything inside them."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _values(item)


def _jwt_claims(text: str) -> dict[str, Any] | None:
    parts = text.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def timed_at_collection(value: Any, now: float) -> str | None:
    """Why `value` is a moment fixed in advance, or None."""
    for item in _values(value):
        if isinstance(item, datetime | date):
            return f"a {type(item).__name__}"
        number = isinstance(item, int | float) and not isinstance(item, bool)
        if number and abs(item - now) < _DAY:
            return f"the Unix time {item}"
        if isinstance(item, str):
            claims = _jwt_claims(item)
            if claims is not None and any(claim in claims for claim in _TIME_CLAIMS):
                return "a JWT with time claims"
    return None


def test_the_detector_sees_what_failed_before_and_passes_what_is_safe() -> None:
    now = time.time()
    claims = base64.urlsafe_b64encode(json.dumps({"nbf": int(now) + 120}).encode()).decode()
    assert timed_at_collection(f"eyJhbGciOiJIUzI1NiJ9.{claims.rstrip('=')}.sig", now)
    assert timed_at_collection([{"deadline": int(now) + 60}], now)
    assert timed_at_collection(datetime.now(), now)
    assert timed_at_collection(lambda: int(time.time()) + 120, now) is None
    assert timed_at_collection(("R" * 43, 120, "a.b.c", True), now) is None


def test_no_collected_parameter_is_a_moment_fixed_at_collection(
    request: pytest.FixtureRequest,
) -> None:
    now = time.time()
    found = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        for name, value in callspec.params.items():
            reason = timed_at_collection(value, now)
            if reason is not None:
                found.append(f"{item.nodeid}: parameter {name!r} is {reason}")
    assert not found, "build time-relative values when the test runs:\n" + "\n".join(found)
