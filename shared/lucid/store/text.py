"""Text a person reads (a display name, an email, a session's name): no control characters.

A control character (Unicode category Cc: C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F) has
no place in a one-line label: NUL truncates it wherever it reaches C (logs, terminals, CSV
exports), CR/LF split log lines and headers, ESC drives terminals. None of these fields needs
one, so each refuses them with a 422 that names the character and where it is, before anything
is stripped or stored. The OpenAPI document states the rule as the fields' `pattern`.

Client-owned JSON (session metadata, user preferences) is not text of this kind: its strings
may hold newlines or tabs, and they reach clients only inside JSON, which escapes them.
"""

from __future__ import annotations

import re

from pydantic import BeforeValidator

# For the OpenAPI document (`pattern`); `refuse_controls` is what validates.
NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def refuse_controls(value: object) -> object:
    """`value`, unless it is a string holding a control character (ValueError: pydantic's 422)."""
    if isinstance(value, str):
        found = _CONTROL.search(value)
        if found is not None:
            where, code = found.start() + 1, ord(found.group())
            raise ValueError(
                f"must not contain control characters: character {where} is U+{code:04X}"
            )
    return value


# Annotated metadata for a text field: checked before any other constraint (strip, length).
NoControls = BeforeValidator(refuse_controls)
