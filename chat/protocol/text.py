"""Make user text safe to show on someone else's terminal.

Control characters (C0, DEL, C1) would let one user move another user's cursor, change colours, set the
window title or worse; bidirectional overrides would let them disguise text. They are replaced when a line is
accepted, so stored history and both output formats carry the safe text:
C0 controls and DEL become their visible Unicode "control pictures" (ESC shows as ␛), a tab becomes a space,
and C1 controls and bidi overrides become U+FFFD.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_REPLACEMENTS: dict[int, int] = {c: 0x2400 + c for c in range(0x20)}
_REPLACEMENTS[0x09] = ord(" ")
_REPLACEMENTS[0x7F] = 0x2421
_REPLACEMENTS.update({c: 0xFFFD for c in range(0x80, 0xA0)})
_REPLACEMENTS.update({c: 0xFFFD for c in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def sanitize(text: str) -> str:
    """Return `text` with every control character made visible and harmless."""
    if _UNSAFE.search(text) is None:  # the common case: nothing to copy
        return text
    return text.translate(_REPLACEMENTS)


def is_safe(text: str) -> bool:
    return _UNSAFE.search(text) is None
