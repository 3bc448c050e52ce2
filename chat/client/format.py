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
            return [f"{utc(item.time)} " + _server_words(protocol.Join(item.room, item.nick, 0.0))]
        case ev.Part():
            return [f"{utc(item.time)} " + _server_words(protocol.Part(item.room, item.nick, item.reason, 0.0))]
        case ev.Quit():
            return [f"{utc(item.time)} " + _server_words(protocol.Quit(item.nick, item.reason, 0.0))]
        case ev.NickChanged():
            return [f"{utc(item.time)} " + _server_words(protocol.NickChange(item.old, item.new, 0.0))]
        case ev.Joined():
            about = f"Topic: {item.topic}" if item.topic else "No topic is set."
            return [f"[#{item.room}] *** You joined #{item.room} ({_plural(len(item.members), 'member')}: "
                    f"{', '.join(item.members)}). {about}"]
        case ev.HistoryEnd():
            return [_history_end(item)]
        case ev.Topic():
            return [_topic(item)]
        case ev.Who():
            return [_server_words(protocol.Who(item.room, item.members))]
        case ev.Rooms():
            rooms = [protocol.RoomInfo(r.room, r.members, r.topic) for r in item.rooms]
            return _server_words(protocol.RoomList(rooms, len(rooms))).split("\n")
        case ev.Help():
            return _server_words(protocol.Help(item.command, item.lines)).split("\n")
        case ev.Notice():
            return [_server_words(protocol.Notice(item.text))]
        case ev.Welcome():
            return [f"*** Welcome, {item.nick}! /help lists the commands; the end of input or /quit leaves."]
        case ev.Pong():
            return [_server_words(protocol.Pong(item.token))]
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
    time = item.time.timestamp() if item.time else None
    return _server_words(protocol.Topic(item.room, item.topic, item.nick, time, item.change))


def _server_words(event: protocol.Event) -> str:
    """The server's own text rendering of an event (without its final newline): one wording for both."""
    return render_text(event).rstrip("\n")
