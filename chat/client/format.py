"""Events as readable text lines, for plain mode. Times are UTC, so output does not depend on where it runs.

Live messages carry the time of day (`08:11:14`); history carries the date too and says `(earlier)`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chat.client import events as ev
from chat.protocol import events as protocol
from chat.protocol.render import render_text


def utc(time: datetime, with_date: bool = False) -> str:
    return time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _why(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


def message_line(m: ev.Message) -> str:
    when = utc(m.time, with_date=m.history) + (" (earlier)" if m.history else "")
    if m.type == "private":
        return f"{when} [private] {m.nick} -> {m.to}: {m.text}"
    if m.type == "action":
        return f"{when} [#{m.room}] * {m.nick} {m.text}"
    return f"{when} [#{m.room}] {m.nick}: {m.text}"


def text_lines(item: ev.Incoming) -> list[str]:
    """How plain mode shows one thing from the server (errors excepted: they go to stderr)."""
    match item:
        case ev.Message():
            return [message_line(item)]
        case ev.Join():
            return [f"{utc(item.time)} [#{item.room}] *** {item.nick} joined"]
        case ev.Part():
            return [f"{utc(item.time)} [#{item.room}] *** {item.nick} left{_why(item.reason)}"]
        case ev.Quit():
            return [f"{utc(item.time)} *** {item.nick} quit{_why(item.reason)}"]
        case ev.NickChanged():
            return [f"{utc(item.time)} *** {item.old} is now known as {item.new}"]
        case ev.Joined():
            about = f"Topic: {item.topic}" if item.topic else "No topic is set."
            return [f"[#{item.room}] *** You joined #{item.room} ({_plural(len(item.members), 'member')}: "
                    f"{', '.join(item.members)}). {about}"]
        case ev.HistoryEnd():
            return [_history_end(item)]
        case ev.Topic():
            return [_topic(item)]
        case ev.Who():
            return [f"[#{item.room}] *** {_plural(len(item.members), 'member')}: {', '.join(item.members)}"]
        case ev.Rooms():
            if not item.rooms:
                return ["*** No rooms have anyone in them."]
            return [f"*** {_plural(len(item.rooms), 'room')}:"] + [
                f"***   #{r.room} ({_plural(r.members, 'member')}){': ' + r.topic if r.topic else ''}"
                for r in item.rooms
            ]
        case ev.Help():
            return [f"*** {line}" for line in item.lines]
        case ev.Notice():
            return [f"*** {item.text}"]
        case ev.Welcome():
            return [f"*** Welcome, {item.nick}! /help lists the commands; the end of input or /quit leaves."]
        case ev.Pong():
            return [f"*** pong{' ' + item.token if item.token else ''}"]
        case ev.Bye():
            return [f"*** Goodbye: {item.reason}{f' ({item.code})' if item.code else ''}"]
        case ev.Error():
            return [f"[error {item.code}] {item.message}"]
        case ev.TextLine():
            return [item.text] if item.text else []
        case ev.Garbage():
            return [f"*** (ignored a line from the server: {item.why})"]
    return []  # hello (before JSON: it came as a TextLine), our own /format, unknown event types


def _history_end(item: ev.HistoryEnd) -> str:
    if item.reason == "backlog":
        return f"[#{item.room}] *** Above: {_plural(item.count, 'earlier message')}."
    further = "/history shows older ones" if item.more else "that is the beginning of the room"
    return f"[#{item.room}] *** End of history: {_plural(item.count, 'message')}; {further}."


def _topic(item: ev.Topic) -> str:
    # the same words as the server's text mode
    event = protocol.Topic(item.room, item.topic, item.nick, item.time.timestamp() if item.time else None,
                           item.change)
    return render_text(event).rstrip("\n")
