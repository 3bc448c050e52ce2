"""Events as readable text lines, for plain mode. Times are UTC, so output does not depend on where it runs.

Live messages carry the time of day (`08:11:14`); history carries the date too and says `(earlier)`. Where
the server's own text rendering says it well, it is used as it is: one wording for `nc` and this client.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chat.client import events as ev
from chat.protocol import events as protocol
from chat.protocol.events import ChatMessage, History, MessageKind
from chat.protocol.render import render_text


def utc(t: float, with_date: bool = False) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def message_line(m: ChatMessage, earlier: bool = False) -> str:
    when = utc(m.time, with_date=earlier) + (" (earlier)" if earlier else "")
    if m.private:
        return f"{when} [private] {m.nick} -> {m.to}: {m.text}"
    if m.kind is MessageKind.ACTION:
        return f"{when} [#{m.room}] * {m.nick} {m.text}"
    return f"{when} [#{m.room}] {m.nick}: {m.text}"


def text_lines(item: ev.Incoming) -> list[str]:
    """How plain mode shows one thing from the server (errors excepted: they go to stderr)."""
    match item:
        case ChatMessage():
            return [message_line(item)]
        case History():
            if not item.messages and item.reason == "backlog":
                return []  # a room with nothing said yet (the server's text rendering says nothing either)
            return [*(message_line(m, earlier=True) for m in item.messages), _history_end(item)]
        case protocol.Join() | protocol.Part() | protocol.Quit() | protocol.NickChange():
            return [f"{utc(item.time)} {_server_words(item)}"]
        case protocol.Joined():
            about = f"Topic: {item.topic}" if item.topic else "No topic is set."
            return [f"[#{item.room}] *** You joined #{item.room} ({_plural(len(item.members), 'member')}: "
                    f"{', '.join(item.members)}). {about}"]
        case protocol.Welcome():
            return [f"*** Welcome, {item.nick}! /help lists the commands; the end of input or /quit leaves."]
        case protocol.Error():
            return [f"[error {item.code.value}] {item.message}"]
        case protocol.PrivateHistory():
            end = [line for line in _server_words(item).split("\n")[-1:] if line]
            return [*(message_line(m, earlier=True) for m in item.messages), *end]
        case (protocol.Topic() | protocol.Who() | protocol.RoomList() | protocol.Help() | protocol.Notice()
              | protocol.Pong() | protocol.Bye() | protocol.Current() | protocol.AccountChange()
              | protocol.PasswordWanted() | protocol.WhoIs() | protocol.Kick() | protocol.Mode()
              | protocol.Invite() | protocol.RoomModes()):
            return _server_words(item).split("\n")
        case ev.TextLine():
            return [item.text] if item.text else []
        case ev.Garbage():
            return [f"*** (ignored a line from the server: {item.why})"]
    return []  # hello (before JSON: it came as a TextLine), our own /format, unknown event types


def _history_end(item: History) -> str:
    if item.reason == "backlog":
        return f"[#{item.room}] *** Above: {_plural(len(item.messages), 'earlier message')}."
    further = "/history shows older ones" if item.more else "that is the beginning of the room"
    return f"[#{item.room}] *** End of history: {_plural(len(item.messages), 'message')}; {further}."


def _server_words(event: protocol.Event) -> str:
    """The server's own text rendering of an event (without its final newline): one wording for both."""
    return render_text(event).rstrip("\n")
