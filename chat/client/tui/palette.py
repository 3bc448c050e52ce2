"""Nick colours: twelve that stay apart, in truecolour and in 256 colours, on dark and light backgrounds.

They are explicit RGB colours, not ANSI names (a theme maps ANSI names as it likes: Textual's default one drew
most of them in the same red). Each has a relative luminance between 0.125 and 0.205, so it contrasts at
least 3:1 with black, white, and Textual's dark (#121212) and light (#E0E0E0) backgrounds; their hues are 18°
or more apart and any two at least 30 apart in CIELAB (clearly different to the eye); and their nearest colours
in the 256-colour palette are twelve different ones (tests/test_client_attention.py checks all three).

A nick gets the colour its name hashes to, unless another nick seen in this session has it: then the next
free one, so the first twelve nicks are all different, and a nick keeps its colour for the session.
"""

from __future__ import annotations

import zlib

from chat.protocol.names import name_key

NICK_COLOURS = (
    "#d03030",  # red
    "#008f00",  # green
    "#1f6dff",  # blue
    "#c16315",  # orange
    "#8c00ff",  # violet
    "#0f8a71",  # teal
    "#e619a8",  # pink
    "#7a631f",  # olive
    "#147eb8",  # sky
    "#af16ca",  # purple
    "#d24b7b",  # rose
    "#47721d",  # moss
)
REMEMBERED = 4096  # nicks whose colour is remembered; past that the memory starts again (colours may then move)


class NickPalette:
    def __init__(self, colours: tuple[str, ...] = NICK_COLOURS) -> None:
        self.colours = colours
        self._given: dict[str, str] = {}  # nick key -> colour

    def colour(self, nick: str) -> str:
        key = name_key(nick)
        given = self._given.get(key)
        if given is not None:
            return given
        if len(self._given) >= REMEMBERED:
            self._given.clear()
        preferred = zlib.crc32(key.encode()) % len(self.colours)
        used = set(self._given.values())
        for step in range(len(self.colours)):
            candidate = self.colours[(preferred + step) % len(self.colours)]
            if candidate not in used:
                break
        else:
            candidate = self.colours[preferred]  # more nicks than colours: share the hashed one
        self._given[key] = candidate
        return candidate


PALETTE = NickPalette()


def nick_colour(nick: str) -> str:
    return PALETTE.colour(nick)
