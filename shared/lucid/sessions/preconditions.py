"""`If-Match` for optimistic concurrency: which versions of a session a write may replace."""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import re
from typing import NamedTuple

from lucid.errors import BadRequestError

MAX_IF_MATCH_LENGTH = 512
_ENTITY_TAG = re.compile(r'^(W/)?"([^"]*)"$')
# Exactly how `etag` writes a version: strong comparison is character by character (RFC 9110
# section 8.8.3.2), so `"01"` is another tag than `"1"`, not the same number.
_VERSION = re.compile(r"^(0|[1-9][0-9]{0,11})$")


class IfMatch(NamedTuple):
    """A parsed `If-Match`: any current representation (`*`) or a set of versions."""

    any_version: bool
    versions: frozenset[int]

    def allows(self, version: int) -> bool:
        """True when a write may replace the session at `version`."""
        return self.any_version or version in self.versions


def parse_if_match(header: str | None) -> IfMatch | None:
    """The precondition in an `If-Match` header, or None when there is none.

    Strong comparison (RFC 9110 §13.1.1): a weak tag never matches, and neither does a tag that
    is not one of our versions. A header that is not a list of entity tags is a 400.
    """
    if header is None:
        return None
    if len(header) > MAX_IF_MATCH_LENGTH:
        raise BadRequestError("If-Match is too long")
    if header.strip() == "*":
        return IfMatch(any_version=True, versions=frozenset())
    versions: set[int] = set()
    for part in header.split(","):
        match = _ENTITY_TAG.fullmatch(part.strip())
        if match is None:
            raise BadRequestError('If-Match must be "*" or a list of quoted entity tags')
        weak, opaque = match.groups()
        if weak is None and _VERSION.fullmatch(opaque):
            versions.add(int(opaque))
    return IfMatch(any_version=False, versions=frozenset(versions))
