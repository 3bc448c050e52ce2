"""Long input as several messages, each under the server's limit on one line (it says its limit in `welcome`).

Text is cut between characters, never inside one's UTF-8 bytes nor before a combining mark, and at a space when
there is one in the second half of the part: the space stays at the end of the part, so the parts, joined, are
the text as typed (the server drops spaces that would start a message; a part is never spaces only).
"""

from __future__ import annotations

import unicodedata

_JOINERS = frozenset("\u200d\ufe0e\ufe0f")  # a zero-width joiner, variation selectors: part of what precedes


def utf8_size(char: str) -> int:
    code = ord(char)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


def split_text(text: str, budget: int) -> list[str]:
    """`text` in parts of at most `budget` bytes of UTF-8 each (budget: at least 4, one character)."""
    if budget < 4:
        raise ValueError("a part must have room for one character (4 bytes)")
    parts: list[str] = []
    while len(text.encode("utf-8")) > budget:
        end = _fits(text, budget)
        space = text.rfind(" ", end // 2, end)
        cut = space + 1 if space > 0 else _char_boundary(text, end)
        part, text = text[:cut], text[cut:]
        if part.strip(" "):
            parts.append(part)
    if text.strip(" ") or not parts:
        parts.append(text)
    return parts


def _fits(text: str, budget: int) -> int:
    """The most characters of `text`, from its start, that fit in `budget` bytes."""
    used = 0
    for index, char in enumerate(text):
        used += utf8_size(char)
        if used > budget:
            return index
    return len(text)


def _char_boundary(text: str, end: int) -> int:
    """`end`, moved back so that no combining mark or joiner is cut from the character before it."""
    cut = end
    while cut > 1 and (unicodedata.combining(text[cut]) or text[cut] in _JOINERS or text[cut - 1] in _JOINERS):
        cut -= 1
    return cut if cut > 1 else end
