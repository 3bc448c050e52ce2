"""What gets the user's attention: nick colours that differ, the bell and desktop notifications (the bytes;
tests/test_client_terminal.py checks them in a real terminal and in tmux)."""

from __future__ import annotations

import itertools
import math

from rich.color import Color, ColorSystem

from chat.client.notify import attention, desktop_kind, desktop_notification
from chat.client.tui.palette import NICK_COLOURS, NickPalette

COMMON_NICKS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
                "oscar"]
BACKGROUNDS = {"black": "#000000", "white": "#ffffff", "textual-dark": "#121212", "textual-light": "#e0e0e0"}


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[int, int, int]:
    triplet = Color.parse(colour).get_truecolor()
    return triplet.red, triplet.green, triplet.blue


def luminance(colour: str) -> float:
    r, g, b = map(_linear, _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def lab(colour: str) -> tuple[float, float, float]:
    r, g, b = map(_linear, _rgb(colour))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_the_palette_reads_on_dark_and_light_backgrounds() -> None:
    for colour, (name, background) in itertools.product(NICK_COLOURS, BACKGROUNDS.items()):
        assert contrast(colour, background) >= 3, f"{colour} on {name}"


def test_the_colours_stay_apart_in_truecolour_and_in_256_colours() -> None:
    for a, b in itertools.combinations(NICK_COLOURS, 2):
        assert math.dist(lab(a), lab(b)) >= 30, f"{a} and {b} look alike"  # CIE76: 2.3 is just noticeable
    eight_bit = {Color.parse(c).downgrade(ColorSystem.EIGHT_BIT).number for c in NICK_COLOURS}
    assert len(eight_bit) == len(NICK_COLOURS)


def test_common_nicks_get_different_colours_in_any_order_and_keep_them() -> None:
    for order in (COMMON_NICKS, list(reversed(COMMON_NICKS))):
        palette = NickPalette()
        given = {nick: palette.colour(nick) for nick in order}
        assert len(set(given.values())) == len(COMMON_NICKS)
        assert all(palette.colour(nick.upper()) == colour for nick, colour in given.items())  # case-blind


def test_notification_text_cannot_end_or_start_an_escape_sequence() -> None:
    hostile = "hi\x1b]0;owned\a\x9b2J\x1b\\ there"
    for kind in ("osc9", "osc777"):
        data = desktop_notification(kind, "chat: bob;x", hostile, in_tmux=False)
        assert data.count("\x1b") == 2 and "\a" not in data and "\x9b" not in data  # its own ESC ] and ST only
    assert desktop_notification("osc777", "a;b", "c;d", in_tmux=False) == "\x1b]777;notify;a,b;c,d\x1b\\"
    assert len(desktop_notification("osc9", "t", "x" * 1000, in_tmux=False)) < 250


def test_inside_tmux_the_notification_passes_through_and_the_bell_stays_outside() -> None:
    data = attention("chat: bob", "psst", bell=True, desktop="osc9", in_tmux=True)
    assert data == "\x1bPtmux;\x1b\x1b]9;chat: bob: psst\x1b\x1b\\\x1b\\\a"
    assert attention("t", "b", bell=False, desktop=None, in_tmux=False) == ""


def test_auto_picks_a_notification_only_for_terminals_known_to_show_one() -> None:
    assert desktop_kind("auto", {"TERM_PROGRAM": "iTerm.app"}) == "osc9"
    assert desktop_kind("auto", {"TERM": "foot"}) == "osc777"
    assert desktop_kind("auto", {"VTE_VERSION": "7600", "TERM": "xterm-256color"}) == "osc777"
    assert desktop_kind("auto", {"TERM": "xterm-256color"}) is None
    assert desktop_kind("off", {"TERM_PROGRAM": "iTerm.app"}) is None
    assert desktop_kind("osc777", {}) == "osc777"
