"""What the user types in the full-screen client, turned into lines for the server or handled here.

The client never relies on the server's idea of a "current room": text for a room goes out as
`/msg #room text`, and the commands that default to the current room get the room shown spelled out.
Commands the client does not handle itself go to the server as typed.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from chat.client.model import Conversation, Kind, room_key
from chat.protocol.commands import HISTORY_MAX
from chat.protocol.errors import ChatError
from chat.protocol.names import check_nick, check_room

if TYPE_CHECKING:
    from chat.client.core import ClientCore

QUIT_VERBS = frozenset({"quit", "disconnect", "exit", "bye"})
CLIENT_HELP = (
    "In this client: Enter sends to the conversation shown; Tab completes commands, nicks and #rooms;",
    "Up/Down recall what you typed; PageUp/PageDown scroll (past the top fetches older messages);",
    "Ctrl-N/Ctrl-P (or Alt-Right/Alt-Left) switch conversations; Ctrl-C, Ctrl-D or /quit leave.",
    "Client commands: /query NICK opens a private conversation, /close leaves the room or closes the",
    "conversation shown, /reconnect retries at once. //text sends text that starts with /.",
)


class Outcome(StrEnum):
    """What became of a line the user typed."""

    SENT = "sent"  # lines to send are in the core's outbox
    LOCAL = "local"  # the client handled it itself (or refused it, saying why)
    OFFLINE = "offline"  # it needs the server and we are not connected: keep the text for later
    QUIT = "quit"  # the user wants to leave
    RECONNECT = "reconnect"  # the user asks to retry the connection now


class TypedInput:
    def __init__(self, core: ClientCore) -> None:
        self.core = core
        self._commands: dict[str, Callable[[str], Outcome]] = {
            "join": self._join, "j": self._join,
            "leave": self._leave, "part": self._leave, "close": self._close,
            "msg": self._msg, "query": self._msg, "tell": self._msg,
            "me": self._me, "topic": self._topic, "who": self._who, "names": self._who,
            "history": self._history, "nick": self._nick, "format": self._format,
            "reconnect": lambda _: Outcome.RECONNECT,
        }

    def handle(self, line: str) -> Outcome:
        line = line.rstrip("\r\n")
        if not line.strip():
            return Outcome.LOCAL
        if line.strip().upper() == "!DISCONNECT":
            return self._quit("")
        if line.startswith("/") and not line.startswith("//"):
            verb, _, rest = line[1:].partition(" ")
            verb = verb.lower()
            if verb in QUIT_VERBS:
                return self._quit(rest)
            if not self.core.registered:
                return self._before_registration(line, verb, rest)
            handler = self._commands.get(verb)
            if handler is not None:
                return handler(rest.strip())
            return self.core.send(line)  # every other command goes to the server as typed
        text = line[1:] if line.startswith("//") else line
        if not self.core.registered:
            return self._before_registration(line, "", text)
        return self._say(self.core.model.current, text)

    def _before_registration(self, line: str, verb: str, rest: str) -> Outcome:
        if self.core.needs_nick:
            if verb == "":
                return self.core.send(rest.strip())  # as on nc: the first plain line is the nickname
            if verb in ("nick", "help", "ping"):
                return self.core.send(line)
            self.core.error_here("Choose a nickname first: type it and press Enter.")
            return Outcome.LOCAL
        if verb == "reconnect":
            return Outcome.RECONNECT
        return self.core.refuse_offline()

    def _say(self, conversation: Conversation, text: str) -> Outcome:
        if conversation.kind is Kind.SERVER:
            self.core.error_here("This is the server window: /join a room or /query a nick to talk.")
            return Outcome.LOCAL
        target = conversation.title
        if conversation.kind is Kind.ROOM and not conversation.joined:
            return self.core.refuse_offline()
        return self.core.send(f"/msg {target} {text}", confirm=conversation.key)

    def _quit(self, reason: str) -> Outcome:
        self.core.quit_reason = reason.strip() or "leaving"
        return Outcome.QUIT

    def _join(self, rest: str) -> Outcome:
        name = rest.split(" ", 1)[0]
        if not name:
            return self._usage("/join ROOM")
        try:
            name = check_room(name)
        except ChatError as e:
            self.core.error_here(e.message)
            return Outcome.LOCAL
        conversation = self.core.model.get(room_key(name))
        if conversation is not None and conversation.joined:
            self.core.model.select(conversation.key)
            return Outcome.LOCAL
        self.core.expect_join(name)
        return self.core.send(f"/join {name}")

    def _leave(self, rest: str) -> Outcome:
        if not rest:
            return self._close("")
        return self.core.send(f"/leave {rest}")

    def _close(self, reason: str) -> Outcome:
        current = self.core.model.current
        if current.kind is Kind.ROOM:
            return self.core.send(f"/leave {current.title} {reason}".rstrip())
        if current.kind is Kind.PRIVATE:
            self.core.model.close(current.key)
        else:
            self.core.error_here("The server window stays open; /quit leaves the chat.")
        return Outcome.LOCAL

    def _msg(self, rest: str) -> Outcome:
        target, _, text = rest.partition(" ")
        if not target:
            return self._usage("/msg NICK|#ROOM TEXT  (or /query NICK to open a conversation)")
        if target.startswith("#"):
            return self.core.send(f"/msg {rest}", confirm=room_key(target) if text.strip() else None)
        try:
            check_nick(target)
        except ChatError as e:
            self.core.error_here(e.message)
            return Outcome.LOCAL
        conversation = self.core.model.private(target)
        self.core.model.select(conversation.key)
        if not text.strip():
            return Outcome.LOCAL
        return self.core.send(f"/msg {target} {text}", confirm=conversation.key)

    def _me(self, rest: str) -> Outcome:
        current = self.core.model.current
        if current.kind is not Kind.ROOM:
            self.core.error_here("/me works in rooms only (the server has no private actions).")
            return Outcome.LOCAL
        if not rest:
            return self._usage("/me ACTION")
        if not current.joined:
            return self.core.refuse_offline()
        return self.core.send(f"/me {current.title} {rest}", confirm=current.key)

    def _topic(self, rest: str) -> Outcome:
        if rest.startswith("#"):
            return self.core.send(f"/topic {rest}")
        current = self.core.model.current
        if current.kind is not Kind.ROOM:
            return self._usage("/topic #ROOM [TEXT]")
        return self.core.send(f"/topic {current.title} {rest}".rstrip())

    def _who(self, rest: str) -> Outcome:
        if rest:
            return self.core.send(f"/who {rest}")
        current = self.core.model.current
        if current.kind is not Kind.ROOM:
            return self._usage("/who ROOM")
        return self.core.send(f"/who {current.title}")

    def _history(self, rest: str) -> Outcome:
        words = rest.split()
        if any(w.lower() in ("before", "after") for w in words):
            return self.core.send(f"/history {rest}")  # an explicit place: the server's answer is merged as it is
        conversation: Conversation | None = self.core.model.current
        if words and not words[0].isdigit():
            conversation = self.core.model.get(room_key(words.pop(0)))
        if conversation is None or conversation.kind is not Kind.ROOM or not conversation.joined:
            return self.core.send(f"/history {rest}".rstrip())
        count = min(int(words[0]), HISTORY_MAX) if words and words[0].isdigit() else None
        if conversation.at_beginning:
            self.core.info_here(f"That is the beginning of {conversation.title}.")
            return Outcome.LOCAL
        return Outcome.SENT if self.core.fetch_older(conversation.key, count) else Outcome.LOCAL

    def _nick(self, rest: str) -> Outcome:
        if not rest:
            return self._usage("/nick NAME")
        return self.core.send(f"/nick {rest}")

    def _format(self, rest: str) -> Outcome:
        self.core.error_here("This client needs JSON from the server; for text, use chat client --plain or nc.")
        return Outcome.LOCAL

    def _usage(self, usage: str) -> Outcome:
        self.core.error_here(f"Usage: {usage}")
        return Outcome.LOCAL
