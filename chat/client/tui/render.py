"""How entries look in the full-screen client: Rich `Text`, never markup (user text is shown as typed).

An entry is drawn as a prefix (time, nick) and a body; lines that wrap are indented under the body, so the
nick column stays clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text

from chat.client.model import Conversation, Entry, EntryKind, Kind
from chat.client.tui.palette import nick_colour

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
MENTION_STYLE = "bold reverse"


@dataclass(frozen=True, slots=True)
class Rendered:
    """One entry, ready to wrap: continuation lines are indented by the prefix's width."""

    prefix: Text
    body: Text
    hidden: bool = False  # from an ignored nick: takes no lines

    @property
    def plain(self) -> str:
        return self.prefix.plain + self.body.plain


def clock(time: datetime, with_date: bool) -> str:
    local = time.astimezone()
    return local.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def render_entry(entry: Entry, today: datetime | None = None) -> Rendered:
    today = today or datetime.now().astimezone()
    local = entry.time.astimezone()
    with_date = entry.earlier or local.date() != today.date()
    prefix = Text(no_wrap=True)
    body = Text(no_wrap=False, overflow="fold")
    if entry.kind is EntryKind.MARK:
        body.append(f"── {entry.text} ──", style="bold bright_black")
        return Rendered(prefix, body, entry.hidden)
    if entry.earlier:
        prefix.append("╎ ", style="blue")
    prefix.append(clock(entry.time, with_date), style="bright_black")
    prefix.append(" ")
    body_style = "dim" if entry.earlier else ""
    if entry.kind in (EntryKind.MESSAGE, EntryKind.PRIVATE):
        nick = entry.nick or "?"
        prefix.append("<", style="bright_black")
        prefix.append(nick, style=f"bold {nick_colour(nick)}" if entry.own else nick_colour(nick))
        prefix.append("> ", style="bright_black")
        body.append(entry.text, style=MENTION_STYLE if entry.mention else body_style)
    elif entry.kind is EntryKind.ACTION:
        nick = entry.nick or "?"
        prefix.append(" * ", style="bold")
        prefix.append(nick, style=nick_colour(nick))
        prefix.append(" ")
        body.append(entry.text, style=f"italic {MENTION_STYLE}" if entry.mention else f"italic {body_style}")
    else:
        marker, style = _EVENT_PREFIX.get(entry.kind, ("---", ""))
        prefix.append(marker + " ", style=style)
        body.append(entry.text, style="red" if entry.kind is EntryKind.ERROR else style)
    return Rendered(prefix, body, entry.hidden)


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


def render_activity(conversations: list[Conversation]) -> Text:
    """The conversations with something unread, for the status line when the list is folded away:
    `2:#lobby(3) 4:bob(1!)` (the number is Alt-N's; ! marks a mention or a private message)."""
    text = Text()
    for number, conversation in enumerate(conversations, start=1):
        if conversation.unread:
            if text:
                text.append(" ")
            style = "bold red" if conversation.mentioned else "bold yellow"
            mark = "!" if conversation.mentioned else ""
            text.append(f"{number}:{conversation.title}({conversation.unread}{mark})", style=style)
    return text
