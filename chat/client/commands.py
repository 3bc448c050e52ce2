"""What the user types in the full-screen client, turned into lines for the server or handled here.

The client never relies on the server's idea of a "current room": text for a room goes out as
`/msg #room text`, and the commands that default to the current room get the room shown spelled out.
Commands the client does not handle itself go to the server as typed. The verbs and their aliases are the
server's (`chat.protocol.commands`): a verb is handled here when its command model is, under every alias.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from chat.client.model import MESSAGE_KINDS, Conversation, EntryKind, Kind, room_key
from chat.protocol import commands as server
from chat.protocol.commands import HISTORY_MAX, VERBS, parse_line
from chat.protocol.errors import ChatError
from chat.protocol.names import check_nick, check_room

if TYPE_CHECKING:
    from chat.client.core import ClientCore

QUIT_VERBS = frozenset({server.Quit.name, *server.Quit.aliases})
LASTLOG_MAX = 50  # matches /lastlog shows, the newest
CLIENT_COMMANDS = {  # commands of this client only, and what they do (for /help)
    "close": "/close leaves the room shown, or closes the private conversation shown",
    "ignore": "/ignore NICK hides NICK's messages (saved in the config file); /ignore alone lists them",
    "unignore": "/unignore NICK shows them again",
    "lastlog": "/lastlog TEXT lists the messages here that contain TEXT (so does Ctrl-R)",
    "reconnect": "/reconnect retries the connection at once",
}
CLIENT_HELP = (
    "In this client: Enter sends to the conversation shown; Tab completes commands, nicks and #rooms;",
    "Up/Down recall what you typed; PageUp/PageDown scroll (past the top fetches older messages); End or",
    "Ctrl-End jump to the newest; Ctrl-R searches back; Ctrl-N/Ctrl-P or Alt-1…9 switch conversations;",
    "Ctrl-C, Ctrl-D or /quit leave. /query NICK opens a private conversation. //text sends text that starts",
    "with /. Client commands:",
    *(f"  {text}" for text in CLIENT_COMMANDS.values()),
)


def carries_password(line: str) -> bool:
    """A line the input history must not keep: /login, /register, /password (the server's list)."""
    return line.startswith("/") and line[1:].partition(" ")[0].lower() in server.SECRET_VERBS


def is_quit(line: str) -> bool:
    """The line leaves the server (/quit and its aliases, or !DISCONNECT): the server's own parser says."""
    try:
        return isinstance(parse_line(line.strip()), server.Quit)
    except ChatError:
        return False


class Outcome(StrEnum):
    """What became of a line the user typed."""

    SENT = "sent"  # lines to send are queued in the core
    LOCAL = "local"  # the client handled it itself (or refused it, saying why)
    KEPT = "kept"  # it could not be sent (offline, too long): keep the text in the input line
    QUIT = "quit"  # the user wants to leave
    RECONNECT = "reconnect"  # the user asks to retry the connection now


class TypedInput:
    def __init__(self, core: ClientCore) -> None:
        self.core = core
        handled: dict[type[server.Command], Callable[[str], Outcome]] = {
            server.Join: self._join, server.Leave: self._leave, server.Msg: self._msg, server.Me: self._me,
            server.Topic: self._topic, server.Who: self._who, server.History: self._history,
            server.Nick: self._nick, server.Format: self._format, server.Login: self._login,
        }
        self._commands: dict[str, Callable[[str], Outcome]] = {
            verb: handled[model] for verb, model in VERBS.items() if model in handled
        }
        self._commands.update({
            "close": self._close, "ignore": self._ignore, "unignore": self._unignore, "lastlog": self._lastlog,
            "reconnect": lambda _: Outcome.RECONNECT,
        })

    @property
    def verbs(self) -> list[str]:
        """Every command the user can type here, for completion."""
        return sorted({*VERBS, *CLIENT_COMMANDS})

    def handle(self, line: str) -> Outcome:
        line = line.rstrip("\r\n")
        if not line.strip():
            return Outcome.LOCAL
        if self.core.password_for is not None and not (line.startswith("/") and not line.startswith("//")):
            return self.core.log_in(line[1:] if line.startswith("//") else line)  # the password it asked for
        if is_quit(line):
            command = parse_line(line.strip())
            return self._quit(command.reason if isinstance(command, server.Quit) else None)
        if line.startswith("/") and not line.startswith("//"):
            verb, _, rest = line[1:].partition(" ")
            verb = verb.lower()
            if not self.core.registered:
                return self._before_registration(line, verb, rest)
            handler = self._commands.get(verb)
            if handler is not None:
                return handler(rest.strip())
            return self.core.send(line)  # every other command goes to the server as typed
        text = line[1:] if line.startswith("//") else line
        if not self.core.registered:
            return self._before_registration(line, "", text)
        return self.say(self.core.model.current, text)

    def say_lines(self, lines: list[str]) -> Outcome:
        """Lines pasted at once: each is text for the conversation shown, even one that starts with /."""
        outcome = Outcome.LOCAL
        for line in lines:
            if line.strip():
                outcome = self.say(self.core.model.current, line)
                if outcome is not Outcome.SENT:
                    break
        return outcome

    def _before_registration(self, line: str, verb: str, rest: str) -> Outcome:
        if self.core.needs_nick:
            if verb == "":
                return self.core.send(rest.strip())  # as on nc: the first plain line is the nickname
            if verb in (server.Nick.name, server.Login.name, *server.Login.aliases, server.Help.name,
                        server.Ping.name):
                return self.core.send(line)
            self.core.error_here("Choose a nickname first: type it and press Enter.")
            return Outcome.LOCAL
        if verb == "reconnect":
            return Outcome.RECONNECT
        return self.core.refuse_offline()

    def say(self, conversation: Conversation, text: str) -> Outcome:
        if conversation.kind is Kind.SERVER:
            self.core.error_here("This is the server window: /join a room or /query a nick to talk.")
            return Outcome.LOCAL
        if conversation.kind is Kind.ROOM and not conversation.joined:
            return self.core.refuse_offline()
        return self.core.send_text(f"/msg {conversation.title} ", text, conversation.key)

    def _login(self, rest: str) -> Outcome:
        """/login NICK PASSWORD: sent as typed; the password is kept to log in again after a reconnect."""
        try:
            command = parse_line(f"/{server.Login.name} {rest}")
        except ChatError as e:
            self.core.error_here(e.message)
            return Outcome.LOCAL
        assert isinstance(command, server.Login)
        self.core.password = command.password.get_secret_value()
        return self.core.send(f"/{server.Login.name} {rest}")

    def _quit(self, reason: str | None) -> Outcome:
        self.core.quit_reason = (reason or "").strip() or "leaving"
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
            if not text.strip():
                return self.core.send(f"/msg {rest}")  # the server explains what is missing
            return self.core.send_text(f"/msg {target} ", text, room_key(target))
        try:
            check_nick(target)
        except ChatError as e:
            self.core.error_here(e.message)
            return Outcome.LOCAL
        conversation = self.core.model.private(target)
        self.core.model.select(conversation.key)
        if not text.strip():
            return Outcome.LOCAL
        return self.core.send_text(f"/msg {target} ", text, conversation.key)

    def _me(self, rest: str) -> Outcome:
        current = self.core.model.current
        if current.kind is not Kind.ROOM:
            self.core.error_here("/me works in rooms only (the server has no private actions).")
            return Outcome.LOCAL
        if not rest:
            return self._usage("/me ACTION")
        if not current.joined:
            return self.core.refuse_offline()
        return self.core.send_text(f"/me {current.title} ", rest, current.key)

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
        if any(w.lower() in ("before", "after", "around") for w in words):
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

    def _ignore(self, rest: str) -> Outcome:
        if not rest:
            ignored = sorted(self.core.ignored.values(), key=str.lower)
            self.core.info_here(f"Ignoring: {', '.join(ignored)}." if ignored else "You ignore nobody.")
            return Outcome.LOCAL
        return self._set_ignored(rest.split()[0], True)

    def _unignore(self, rest: str) -> Outcome:
        if not rest:
            return self._usage("/unignore NICK")
        return self._set_ignored(rest.split()[0], False)

    def _set_ignored(self, nick: str, ignore: bool) -> Outcome:
        try:
            check_nick(nick)
        except ChatError as e:
            self.core.error_here(e.message)
            return Outcome.LOCAL
        if not self.core.set_ignored(nick, ignore):
            self.core.info_here(f"You already ignore {nick}." if ignore else f"You do not ignore {nick}.")
            return Outcome.LOCAL
        problem = self.core.save_ignored()
        done = f"Ignoring {nick}: their messages are hidden." if ignore else f"No longer ignoring {nick}."
        self.core.info_here(done if problem is None else f"{done} Not saved: {problem}.")
        return Outcome.LOCAL

    def _lastlog(self, rest: str) -> Outcome:
        if not rest:
            return self._usage("/lastlog TEXT")
        current = self.core.model.current
        needle = rest.casefold()
        found = [e for e in current.entries
                 if e.kind in MESSAGE_KINDS and not e.hidden and needle in f"{e.nick} {e.text}".casefold()]
        if not found:
            self.core.info_here(f"Nothing here contains {rest!r}.")
            return Outcome.LOCAL
        shown = found[-LASTLOG_MAX:]
        more = f" (the last {len(shown)} shown)" if len(found) > len(shown) else ""
        self.core.info_here(f"{len(found)} message{'s' if len(found) != 1 else ''} here contain {rest!r}{more}:")
        for entry in shown:
            who = f"* {entry.nick}" if entry.kind is EntryKind.ACTION else f"<{entry.nick}>"
            self.core.info_here(f"  {entry.time.astimezone():%m-%d %H:%M} {who} {entry.text}")
        return Outcome.LOCAL

    def _usage(self, usage: str) -> Outcome:
        self.core.error_here(f"Usage: {usage}")
        return Outcome.LOCAL
