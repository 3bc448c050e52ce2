"""How entries look in the full-screen client: Rich `Text`, never markup (user text is shown as typed)."""

from __future__ import annotations

import zlib
from datetime import datetime

from rich.text import Text

from chat.client.model import Conversation, Entry, EntryKind, Kind

# Distinct on dark and light backgrounds alike; a nick keeps its colour across runs and machines.
NICK_COLOURS = (
    "bright_cyan", "bright_green", "bright_magenta", "bright_yellow", "bright_blue", "bright_red",
    "cyan", "green", "magenta", "yellow", "dodger_blue1", "orange1", "orchid", "spring_green2",
)
_EVENT_PREFIX = {
    EntryKind.JOIN: ("-->", "green"),
    EntryKind.PART: ("<--", "yellow"),
    EntryKind.QUIT: ("<--", "yellow"),
    EntryKind.NICK: ("---", "cyan"),
    EntryKind.TOPIC: ("---", "cyan"),
    EntryKind.INFO: ("---", "bright_black"),
    EntryKind.ERROR: ("!!!", "bold red"),
    EntryKind.STATUS: ("***", "bold magenta"),
}


def nick_colour(nick: str) -> str:
    return NICK_COLOURS[zlib.crc32(nick.lower().encode()) % len(NICK_COLOURS)]


def clock(time: datetime, with_date: bool) -> str:
    local = time.astimezone()
    return local.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def render_entry(entry: Entry, today: datetime | None = None) -> Text:
    """One scrollback entry as one (wrappable) line."""
    today = today or datetime.now().astimezone()
    local = entry.time.astimezone()
    with_date = entry.earlier or local.date() != today.date()
    text = Text(no_wrap=False, overflow="fold")
    if entry.kind is EntryKind.MARK:
        text.append(f"── {entry.text} ──", style="bold bright_black")
        return text
    if entry.earlier:
        text.append("╎ ", style="blue")
    text.append(clock(entry.time, with_date), style="bright_black")
    text.append(" ")
    body_style = "dim" if entry.earlier else ""
    if entry.kind in (EntryKind.MESSAGE, EntryKind.PRIVATE):
        nick = entry.nick or "?"
        text.append("<", style="bright_black")
        text.append(nick, style=f"bold {nick_colour(nick)}" if entry.own else nick_colour(nick))
        text.append("> ", style="bright_black")
        text.append(entry.text, style="reverse yellow" if entry.mention else body_style)
    elif entry.kind is EntryKind.ACTION:
        nick = entry.nick or "?"
        text.append(" * ", style="bold")
        text.append(nick, style=nick_colour(nick))
        text.append(" ")
        text.append(entry.text, style="italic reverse yellow" if entry.mention else f"italic {body_style}")
    else:
        prefix, style = _EVENT_PREFIX.get(entry.kind, ("---", ""))
        text.append(prefix + " ", style=style)
        text.append(entry.text, style="red" if entry.kind is EntryKind.ERROR else style)
    return text


def render_conversation_label(conversation: Conversation, current: bool) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    marker = "▶" if current else " "
    if conversation.kind is Kind.SERVER:
        name, style = conversation.name, "italic"
    elif conversation.kind is Kind.ROOM:
        name, style = conversation.title, "" if conversation.joined else "strike"
    else:
        name, style = conversation.name, nick_colour(conversation.name)
    if current:
        style = f"bold {style}"
    text.append(f"{marker} ", style="bold")
    text.append(name, style=style)
    if conversation.unread:
        text.append(f" ({conversation.unread})", style="bold red" if conversation.mentioned else "bold yellow")
    return text
