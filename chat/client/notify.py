"""What the client writes to the terminal to get the user's attention: a bell, and a desktop notification.

A mention of your nick or a private message rings the terminal's bell (BEL; tmux then sets its bell flag on
the window, and most terminals flash or mark the tab) unless the settings say `bell = false`. Terminals that
show desktop notifications get one too: OSC 9 (iTerm2, WezTerm, ghostty, kitty) or OSC 777 (foot, urxvt,
VTE-based terminals such as GNOME Terminal). "auto" picks one when the environment names such a terminal;
inside tmux the notification is wrapped in tmux's passthrough (shown when tmux's `allow-passthrough` is on).

The text comes from other people, so it is stripped of every control character before it goes into an escape
sequence: a nick or a message can never end the sequence early or start one of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

BEL = "\a"
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
TEXT_MAX = 200  # characters of the message in a notification


def desktop_kind(setting: str, environ: Mapping[str, str]) -> str | None:
    """"osc9", "osc777" or None (no desktop notification) for the setting `auto|osc9|osc777|off`."""
    if setting in ("osc9", "osc777"):
        return setting
    if setting != "auto":
        return None
    program = environ.get("TERM_PROGRAM", "")
    term = environ.get("TERM", "")
    if program in ("iTerm.app", "WezTerm", "ghostty") or environ.get("LC_TERMINAL") == "iTerm2":
        return "osc9"
    if "KITTY_WINDOW_ID" in environ or term == "xterm-kitty":
        return "osc9"
    if term.startswith(("foot", "rxvt")) or "VTE_VERSION" in environ:
        return "osc777"
    return None


def clean(text: str) -> str:
    return _CONTROLS.sub(" ", text)


def desktop_notification(kind: str, title: str, body: str, *, in_tmux: bool) -> str:
    """The escape sequence that shows `title` and `body` as a desktop notification."""
    title, body = clean(title), clean(body)
    if len(body) > TEXT_MAX:
        body = body[: TEXT_MAX - 1] + "…"
    if kind == "osc777":
        sequence = f"\x1b]777;notify;{title.replace(';', ',')};{body.replace(';', ',')}\x1b\\"
    else:
        sequence = f"\x1b]9;{title}: {body}\x1b\\"
    if in_tmux:  # tmux passes it on to the outer terminal, its escapes doubled
        sequence = "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence


def attention(title: str, body: str, *, bell: bool, desktop: str | None, in_tmux: bool) -> str:
    """Everything to write for one alert: the notification first, then the bell (which tmux must see itself)."""
    out = desktop_notification(desktop, title, body, in_tmux=in_tmux) if desktop else ""
    return out + (BEL if bell else "")
