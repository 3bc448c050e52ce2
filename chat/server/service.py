"""The chat services: what each command does to the state, and what it asks to store and deliver.

Everything here runs on the event-loop thread and returns nothing to send directly: it appends deliveries and
writes to the `Outbox` it is given (see outbox.py). Every refusal is a `ChatError`, answered with one `error`
event; the connection stays open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

from chat import __version__
from chat.protocol import commands as cmd
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import (
    Bye,
    ChatMessage,
    Current,
    DeliveryState,
    Error,
    Hello,
    Help,
    Join,
    Joined,
    MessageKind,
    NickChange,
    Notice,
    Part,
    Pong,
    Quit,
    RoomInfo,
    RoomList,
    Topic,
    Welcome,
    Who,
)
from chat.protocol.names import check_nick, check_room, name_key
from chat.server.config import ServerConfig
from chat.server.outbox import Backlog, CloseAfterFlush, HistoryRequest, Outbox, SetFormat
from chat.server.state import ChatState, Room, Session
from chat.storage.repository import SeenUser, TopicChange

NICK_PROMPT = "Type a nickname and press Enter."


class ChatService:
    def __init__(self, state: ChatState, config: ServerConfig, clock: Callable[[], float]) -> None:
        self.state = state
        self.config = config
        self.clock = clock

    # ---------------------------------------------------------------------------------- connection events

    def connected(self, s: Session, out: Outbox) -> None:
        out.reply(s, Hello(self.config.server_name, __version__, self.config.max_line))

    def line(self, s: Session, line: str, out: Outbox) -> None:
        """Handle one line from a client."""
        command: cmd.Command | None = None
        try:
            command = cmd.parse_line(line)
            if command is None:
                return
            if not s.registered:
                if isinstance(command, cmd.Say):  # the tutorial's flow: the first plain line is the nickname
                    command = cmd.Nick.model_construct(nick=check_nick(command.text.strip()))
                elif command.needs_nick:
                    raise ChatError(ErrorCode.NOT_REGISTERED, f"Choose a nickname first. {NICK_PROMPT}")
            self.dispatch(s, command, out)
        except ChatError as e:
            out.reply(s, Error(e.code, e.message, command.name if command else None))
            if not s.registered and not s.closing:
                out.reply(s, Notice(NICK_PROMPT))

    def rejected(self, s: Session, error: ChatError, out: Outbox) -> None:
        """A line the framing refused (too long, not UTF-8)."""
        out.reply(s, Error(error.code, error.message))

    def disconnected(self, s: Session, reason: str, out: Outbox) -> None:
        """The connection ended, however it ended: free the nick now and tell the rooms."""
        if not s.registered:
            return
        now = self.clock()
        out.deliver(self.state.co_members(s), Quit(s.nick, reason, now))
        for room in s.rooms.values():
            room.remove_member(s)
        s.rooms.clear()
        s.current = None
        s.registered = False
        if self.state.nicks.get(s.key) is s:
            del self.state.nicks[s.key]
        out.writes.users.append(SeenUser(s.nick, s.key, now))

    # ---------------------------------------------------------------------------------------- dispatch

    def dispatch(self, s: Session, c: cmd.Command, out: Outbox) -> None:
        match c:
            case cmd.Say():
                self.say(s, self._current(s), MessageKind.MESSAGE, c.text, out)
            case cmd.Me():
                self.say(s, self._member_room(s, c.room) if c.room else self._current(s), MessageKind.ACTION,
                         c.text, out)
            case cmd.Msg():
                self.msg(s, c, out)
            case cmd.Nick():
                self.nick(s, c.nick, out)
            case cmd.Join():
                self.join(s, c.room, out)
            case cmd.Leave():
                self.leave(s, c.room, c.reason, out)
            case cmd.Rooms():
                self.rooms(s, out)
            case cmd.Who():
                room = self._room(c.room) if c.room else self._current(s)
                members = sorted((m.nick for m in room.members), key=str.lower)
                out.reply(s, Who(room.name, members))
            case cmd.Topic():
                self.topic(s, c, out)
            case cmd.History():
                self.history(s, c, out)
            case cmd.Help():
                out.reply(s, Help(c.command, cmd.help_lines(c.command)))
            case cmd.Quit():
                self.quit(s, c.reason, out)
            case cmd.Format():
                out.reply(s, SetFormat(json=c.format == "json"))
            case cmd.Ping():
                out.reply(s, Pong(c.token))
            case _:
                assert_never(c)  # type: ignore[arg-type]

    # ---------------------------------------------------------------------------------------- commands

    def say(self, s: Session, room: Room, kind: MessageKind, text: str, out: Outbox) -> None:
        message = ChatMessage(self.state.new_message_id(), kind, s.nick, text, self.clock(), room=room.name,
                              state=DeliveryState.PENDING)
        room.remember(message)
        out.store_message(message, room, s)
        out.deliver(room.members, message)

    def msg(self, s: Session, c: cmd.Msg, out: Outbox) -> None:
        if c.to_room:
            self.say(s, self._member_room(s, c.target), MessageKind.MESSAGE, c.text, out)
            return
        target = self.state.nicks.get(name_key(c.target))
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {c.target} is online.")
        message = ChatMessage(self.state.new_message_id(), MessageKind.PRIVATE, s.nick, c.text, self.clock(),
                              to=target.nick, state=DeliveryState.PENDING)
        out.store_message(message, None, s)
        out.deliver((s,) if target is s else (s, target), message)

    def nick(self, s: Session, nick: str, out: Outbox) -> None:
        key = name_key(nick)
        holder = self.state.nicks.get(key)
        if holder is not None and holder is not s:
            raise ChatError(ErrorCode.NICK_TAKEN, f"The nickname {nick} is taken; choose another.")
        now = self.clock()
        out.writes.users.append(SeenUser(nick, key, now))
        if not s.registered:
            self._register(s, nick, key, out)
            return
        if nick == s.nick:
            return
        old = s.nick
        del self.state.nicks[s.key]
        s.nick, s.key = nick, key
        self.state.nicks[key] = s
        out.deliver((s, *self.state.co_members(s)), NickChange(old, nick, now))

    def _register(self, s: Session, nick: str, key: str, out: Outbox) -> None:
        s.nick, s.key, s.registered = nick, key, True
        self.state.nicks[key] = s
        out.reply(s, Welcome(nick, self.config.max_line))
        if self.config.lobby:
            self.join(s, self.config.lobby, out)

    def join(self, s: Session, name: str, out: Outbox) -> None:
        key = name_key(name)
        room = self.state.rooms.get(key)
        if room is None:
            room = self.state.new_room(name, self.clock())
            out.store_room(room)
        elif key in s.rooms:  # already there: it just becomes the current room
            s.current = room
            out.reply(s, Current(room.name))
            return
        out.deliver(room.members, Join(room.name, s.nick, self.clock()))
        room.add_member(s)
        s.rooms[key] = room
        s.current = room
        messages, more = room.backlog(self.config.backlog, self.config.sendq // 4)
        s.cursors[key] = messages[0].id if messages else self.state.next_message_id
        members = [m.nick for m in room.members]
        out.reply(s, Joined(room.name, members, room.topic, self.clock()))
        if messages:
            out.reply(s, Backlog(room.name, messages, more))

    def leave(self, s: Session, name: str | None, reason: str | None, out: Outbox) -> None:
        room = self._room(name) if name else self._current(s)
        if room.key not in s.rooms:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{room.name}.")
        out.deliver(room.members, Part(room.name, s.nick, reason, self.clock()))
        room.remove_member(s)
        del s.rooms[room.key]
        s.cursors.pop(room.key, None)
        if s.current is room:
            s.current = next(reversed(s.rooms.values()), None)
            out.reply(s, Current(s.current.name if s.current else None))

    def rooms(self, s: Session, out: Outbox) -> None:
        busy = [r for r in self.state.rooms.values() if r.members]
        busy.sort(key=lambda r: (-len(r.members), r.key))
        out.reply(s, RoomList([RoomInfo(r.name, len(r.members), r.topic) for r in busy]))

    def topic(self, s: Session, c: cmd.Topic, out: Outbox) -> None:
        room = self._room(c.room) if c.room else self._current(s)
        if c.text is None:
            out.reply(s, Topic(room.name, room.topic, room.topic_by, room.topic_at, change=False))
            return
        if room.key not in s.rooms:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You must be in #{room.name} to set its topic.")
        now = self.clock()
        room.topic = None if c.clears else c.text
        room.topic_by, room.topic_at = s.nick, now
        out.store_room(room)
        out.writes.topics.append(TopicChange(room.id, room.topic, s.nick, now))
        out.deliver(room.members, Topic(room.name, room.topic, s.nick, now, change=True))

    def history(self, s: Session, c: cmd.History, out: Outbox) -> None:
        room = self._room(c.room) if c.room else self._current(s)
        request = HistoryRequest(s, room, c.count, before=c.before, after=c.after)
        if c.before is None and c.after is None:  # continue from the oldest message shown so far
            cursor = s.cursors.get(room.key, self.state.next_message_id)
            if isinstance(cursor, HistoryRequest):
                request.chain = cursor
            else:
                request.before = cursor
            s.cursors[room.key] = request
        out.ask_history(request)

    def quit(self, s: Session, reason: str | None, out: Outbox) -> None:
        s.closing = "quit"  # read nothing more from this client
        out.reply(s, Bye("You left the chat. Come back soon!"))
        out.reply(s, CloseAfterFlush())
        self.disconnected(s, reason or "quit", out)

    # ------------------------------------------------------------------------------------------ helpers

    def _current(self, s: Session) -> Room:
        if s.current is None:
            raise ChatError(ErrorCode.NO_CURRENT_ROOM, "You are not in any room; /join one first.")
        return s.current

    def _member_room(self, s: Session, name: str) -> Room:
        room = self._room(name)
        if room.key not in s.rooms:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{room.name}; /join it first.")
        return room

    def _room(self, name: str) -> Room:
        room = self.state.rooms.get(name_key(check_room(name)))
        if room is None:
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"There is no room #{name.lstrip('#')}.")
        return room
