"""The full-screen client's protocol logic, without I/O: what each event does and what to send.

`ClientCore` is told three things: the connection opened or was lost, an event arrived, the user typed a
line (translated in commands.py). It answers by changing the model (model.py), queueing lines to send
(outgoing.py paces them; `take_outbox` gives what may go now) and raising alerts (a mention, a private
message) for the UI to ring. The session (session.py) does the I/O and the timing, the UI shows the model,
so all of this is testable without either.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from chat.client import events as ev
from chat.client.commands import CLIENT_HELP, Outcome, TypedInput
from chat.client.model import (
    SERVER_KEY,
    ClientModel,
    Conversation,
    Entry,
    EntryKind,
    Kind,
    nick_key,
    now,
    room_key,
)
from chat.client.outgoing import INTERNAL_TOKEN, LAG_TOKEN, WINDOW, Outgoing
from chat.client.split import split_text
from chat.protocol import events as protocol
from chat.protocol.events import ChatMessage, History, MessageKind
from chat.protocol.names import NICK_MAX
from chat.protocol.render import render_text

__all__ = ["INTERNAL_TOKEN", "WINDOW", "Alert", "ClientCore", "Outcome", "Phase"]

REJOINED_TOKEN = INTERNAL_TOKEN + "rejoined"
HEARTBEAT_TOKEN = INTERNAL_TOKEN + "alive"
OLDER_PAGE = 100  # messages per page when scrolling back
CATCHUP_PAGE = 500  # messages per page when fetching what was missed while disconnected
CATCHUP_PAGES = 10  # at most this many catch-up pages per room and reconnect
UNKNOWN_MAX_LINE = 510  # bytes per line until the server says its limit (IRC's, which any server takes)


class Phase(StrEnum):
    OFFLINE = "offline"  # not connected: about to connect, or waiting to retry
    CONNECTING = "connecting"
    REGISTERING = "registering"  # connected, nick not yet accepted
    ONLINE = "online"
    CLOSED = "closed"  # we left


@dataclass(slots=True)
class PageRequest:
    """A /history request the client made, waiting for its page (the server answers them in order)."""

    key: str  # room key
    newer: bool  # True: catching up after a reconnect (after ID); False: older history (before ID)
    stop_at: int | None = None  # catching up: the oldest message of the backlog, where the gap ends
    pages_left: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    """Something that should reach the user even when they look elsewhere: a mention or a private message."""

    key: str  # the conversation
    nick: str
    text: str
    private: bool


def mentions(text: str, nick: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(nick)}(?![\w-])", text, re.IGNORECASE) is not None


def alternate_nick(nick: str, attempt: int) -> str:
    """nick_, nick__, ... then nick1, nick2...: what to use while someone (our own ghost) holds `nick`."""
    suffix = "_" * attempt if attempt <= 2 else str(attempt - 2)
    return nick[: NICK_MAX - len(suffix)] + suffix


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ClientCore:
    def __init__(self, nick: str | None, room: str | None, server_label: str, *, ignored: Iterable[str] = (),
                 on_ignore: Callable[[list[str]], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic, password: str | None = None) -> None:
        self.model = ClientModel(server_label)
        self.server_label = server_label
        self.wanted_nick = nick  # the nick we want; None: ask the user
        self.password = password  # the password of `wanted_nick`'s account: we log in (again, after reconnects)
        self.password_for: str | None = None  # the server asked for this registered nick's password: the next
        # line typed is the password (the UI hides it), not a message
        self.initial_room = room
        self.phase = Phase.OFFLINE
        self.registered = False
        self.ever_registered = False
        self.quit_reason: str | None = None
        self.last_error: str | None = None  # why the last connection attempt failed or ended
        self.retry_at: float | None = None  # monotonic time of the next attempt, while waiting (session)
        self.bye: protocol.Bye | None = None
        self.garbage_lines = 0
        self.max_line: int | None = None  # the server's limit on a line, from its welcome
        self.ignored: dict[str, str] = {nick_key(n): n for n in ignored}  # key -> nick as the user typed it
        self.on_ignore = on_ignore  # saves the ignore list; returns why it could not, or None
        self.alerts: list[Alert] = []
        self.outgoing = Outgoing(clock)
        self._lag_numbers = itertools.count(1)
        self._alt_attempt = 0
        self._reclaiming = False
        self._rejoining: set[str] | None = None  # room keys being rejoined after a reconnect
        self._user_joins: set[str] = set()  # room keys the user asked to join: show them when joined
        self._leaving_quietly: set[str] = set()  # rooms the server put us in that we had left
        self._pages: deque[PageRequest] = deque()
        self._pending_marks: dict[str, Entry] = {}  # room key -> "You joined"/"Rejoined", placed after the backlog
        self.typed = TypedInput(self)

    # -------------------------------------------------------------------------------------- properties

    @property
    def needs_nick(self) -> bool:
        """The user must type a nickname (none given, or the one given was refused)."""
        return self.phase is Phase.REGISTERING and not self.ever_registered and self.wanted_nick is None

    @property
    def online(self) -> bool:
        return self.phase is Phase.ONLINE

    @property
    def wants_nick_back(self) -> bool:
        """We are registered under a stand-in nick and should try to take ours back."""
        return (self.online and self.wanted_nick is not None and self.model.nick is not None
                and nick_key(self.model.nick) != nick_key(self.wanted_nick) and not self._reclaiming)

    def take_outbox(self) -> list[str]:
        """The lines to send now (a long input goes out a window at a time, as the server answers)."""
        return self.outgoing.take()

    def take_alerts(self) -> list[Alert]:
        alerts, self.alerts = self.alerts, []
        return alerts

    def _queue(self, line: str) -> None:
        self.outgoing.push(line)

    # -------------------------------------------------------------------------------------- connection

    def connecting(self) -> None:
        self.phase = Phase.CONNECTING
        self.retry_at = None

    def connection_opened(self) -> None:
        self.phase = Phase.REGISTERING
        self.registered = False
        self.bye = None
        self._alt_attempt = 0
        self._reclaiming = False
        self.password_for = None
        self._queue("/format json")
        if self.wanted_nick:
            self._queue(self._claim(self.wanted_nick))

    def connection_failed(self, reason: str) -> None:
        """An attempt to connect failed. Said once per outage, not at every retry."""
        if self.last_error != reason:
            self._status_everywhere(f"Cannot connect to {self.server_label}: {reason}")
        self.last_error = reason
        self.phase = Phase.OFFLINE

    def connection_lost(self, reason: str) -> None:
        if self.phase is Phase.CLOSED:
            return
        for key in list(self._pending_marks):
            self._place_mark(key)
        # said once per outage: not again for each retry that connects and is dropped the same way
        news = self.registered or (self.phase is Phase.REGISTERING and self.last_error != reason)
        self.phase = Phase.OFFLINE
        self.registered = False
        self.last_error = reason
        self._rejoining = None
        self._pages.clear()
        for conversation in self.model.rooms():
            conversation.joined = False
            conversation.fetching = False
        unsent = self.outgoing.reset()
        for key in unsent.unconfirmed:
            unconfirmed = self.model.get(key)
            if unconfirmed is not None:
                self._add(unconfirmed, EntryKind.ERROR, "The connection dropped before the server confirmed "
                          "your last message; it may not have been delivered.")
        for key, count in unsent.not_sent.items():
            waiting = self.model.get(key)
            if waiting is not None:
                lines = "line was" if count == 1 else f"{count} lines were"
                self._add(waiting, EntryKind.ERROR, f"The connection dropped: {lines} not sent.")
        if news:
            self._status_everywhere(f"Disconnected: {reason}. Reconnecting…" if self.quit_reason is None
                                    else f"Disconnected: {reason}.")

    def closed(self) -> None:
        self.phase = Phase.CLOSED

    def ping_for_lag(self) -> None:
        """Measure the lag now, unless a ping of ours is already on its way (its pong will measure it)."""
        if self.online and not self.outgoing.pinging(INTERNAL_TOKEN):
            self.outgoing.ping(f"{LAG_TOKEN}{next(self._lag_numbers)}")

    # -------------------------------------------------------------------------------------- user input

    def user_input(self, line: str) -> Outcome:
        """The user typed `line` in the conversation shown (see commands.py)."""
        return self.typed.handle(line)

    def send(self, *lines: str) -> Outcome:
        """Send lines for the user, as they are (commands)."""
        if self.phase not in (Phase.ONLINE, Phase.REGISTERING):
            return self.refuse_offline()
        too_long = next((line for line in lines if len(line.encode("utf-8")) > self.line_limit), None)
        if too_long is not None:
            self.error_here(f"That line is {len(too_long.encode('utf-8'))} bytes long and the server takes at "
                            f"most {self.line_limit}: nothing was sent. It is still in the input line.")
            return Outcome.KEPT
        for line in lines:
            self._queue(line)
        return Outcome.SENT

    def send_text(self, prefix: str, text: str, key: str) -> Outcome:
        """Say `text` with `prefix` (`/msg #room `, `/me #room `) in as many messages as the server's limit on
        a line needs; each is confirmed by its echo in conversation `key`."""
        if self.phase is not Phase.ONLINE:
            return self.refuse_offline()
        budget = self.line_limit - len(prefix.encode("utf-8"))
        if budget < 4:
            self.error_here(f"The server takes lines of at most {self.line_limit} bytes: no room for text here.")
            return Outcome.KEPT
        for part in split_text(text, budget):
            self.outgoing.push(prefix + part, confirm=key)
        return Outcome.SENT

    @property
    def line_limit(self) -> int:
        return self.max_line or UNKNOWN_MAX_LINE

    def refuse_offline(self) -> Outcome:
        self.error_here("Not connected: nothing was sent. It is still in the input line; press Enter again "
                        "once reconnected (/reconnect tries now).")
        return Outcome.KEPT

    def expect_join(self, name: str) -> None:
        """The user asked to join `name`: show the room when the server says we are in."""
        self._user_joins.add(room_key(name))

    # ---------------------------------------------------------------------------------------- ignoring

    def is_ignored(self, nick: str | None) -> bool:
        return nick is not None and nick_key(nick) in self.ignored

    def set_ignored(self, nick: str, ignore: bool) -> bool:
        """Ignore `nick` (or stop): their messages and comings and goings are hidden. False if nothing changed."""
        key = nick_key(nick)
        if (key in self.ignored) == ignore:
            return False
        if ignore:
            self.ignored[key] = nick
        else:
            del self.ignored[key]
        self.model.hide(lambda entry: entry.nick is not None and nick_key(entry.nick) in self.ignored)
        return True

    def save_ignored(self) -> str | None:
        """Save the ignore list; why it could not be saved, or None."""
        if self.on_ignore is None:
            return "no config file is used"
        return self.on_ignore(sorted(self.ignored.values(), key=str.lower))

    # ----------------------------------------------------------------------------------------- paging

    def fetch_older(self, key: str, count: int | None = None) -> bool:
        """Ask for the page of messages before the oldest shown in a room. False if there is nothing to do."""
        count = count or OLDER_PAGE
        conversation = self.model.get(key)
        if (conversation is None or conversation.kind is not Kind.ROOM or not conversation.joined
                or conversation.at_beginning or conversation.fetching or not self.online):
            return False
        oldest = conversation.oldest_id
        place = f" before {oldest}" if oldest is not None else ""
        self._queue(f"/history {conversation.title} {count}{place}")
        self._pages.append(PageRequest(key, newer=False))
        conversation.fetching = True
        return True

    def _catch_up(self, conversation: Conversation, after: int, stop_at: int, pages_left: int) -> None:
        if pages_left <= 0:
            self._add(conversation, EntryKind.INFO, "More was said while you were away than is shown here; "
                      f"/history {conversation.title} 500 after {after} shows more.")
            return
        self._queue(f"/history {conversation.title} {CATCHUP_PAGE} after {after}")
        self._pages.append(PageRequest(conversation.key, newer=True, stop_at=stop_at, pages_left=pages_left - 1))

    def _take_page_request(self, key: str) -> PageRequest | None:
        if self._pages and self._pages[0].key == key:
            return self._pages.popleft()
        return None  # a page the user asked for with an explicit place

    # ------------------------------------------------------------------------------------------ events

    def receive(self, item: ev.Incoming | None) -> None:
        """Handle one thing the server sent. Never raises for anything the server can send."""
        if item is None:
            return  # a line of a history page: the page comes whole
        if self._pending_marks:
            self._before_backlog(item)
        match item:
            case protocol.ChatMessage():
                self._on_message(item)
            case protocol.History():
                self._on_history(item)
            case protocol.Join():
                conversation = self.model.get(room_key(item.room))
                if conversation is not None:
                    conversation.add_member(item.nick)
                    self._add(conversation, EntryKind.JOIN, f"{item.nick} joined {conversation.title}",
                              nick=item.nick, time=_when(item.time))
            case protocol.Joined():
                self._on_joined(item)
            case protocol.Part():
                self._on_part(item)
            case protocol.Quit():
                self._on_quit(item)
            case protocol.NickChange():
                self._on_nick(item)
            case protocol.Topic():
                self._on_topic(item)
            case protocol.Who():
                conversation = self.model.get(room_key(item.room))
                if conversation is not None:
                    conversation.set_members(item.members, item.ops, item.voiced)
                count = f"{len(item.members)} member{'s' if len(item.members) != 1 else ''}"
                shown = render_text(item).rstrip("\n").rsplit(": ", 1)[-1] if item.members else ""
                self.info_here(f"#{item.room}: {count}: {shown}")
            case protocol.RoomList():
                self._on_rooms(item)
            case protocol.Help():
                lines = list(item.lines) + (list(CLIENT_HELP) if item.command is None else [])
                for line in lines:
                    self.info_here(line)
            case protocol.Pong():
                self._on_pong(item)
            case protocol.Notice():
                self.info_here(item.text)
            case protocol.Welcome():
                self._on_welcome(item)
            case protocol.Hello():
                self.max_line = item.max_line
            case protocol.Error():
                self._on_error(item)
            case protocol.Bye():
                self.bye = item
                why = f" ({item.code.value})" if item.code else ""
                self._status_everywhere(f"The server says goodbye: {item.reason}{why}")
            case ev.TextLine():
                if item.text.strip():
                    self._add(self.model.server, EntryKind.INFO, item.text.strip().removeprefix("*** "))
            case ev.Garbage():
                self.garbage_lines += 1
                self._add(self.model.server, EntryKind.ERROR, f"Ignored a line from the server: {item.why}")
            case protocol.PasswordWanted():
                self._on_password_wanted(item)
            case protocol.AccountChange():
                self._on_account(item)
            case protocol.Kick():
                self._on_kick(item)
            case protocol.Mode():
                self._on_mode(item)
            case protocol.PrivateHistory():
                for m in item.messages:
                    own = nick_key(m.nick) == nick_key(self.model.nick or "")
                    self._add_message(self.model.private(m.to if own and m.to else m.nick), m, earlier=True)
                if item.reason == "page":
                    self.info_here(f"{len(item.messages)} earlier private message(s) with {item.nick}"
                                   f"{'; there are more' if item.more else ''}.")
            case protocol.SearchResults():
                self._on_search(item)
            case (protocol.WhoIs() | protocol.Invite() | protocol.RoomModes() | protocol.Operator()
                  | protocol.UserModes() | protocol.Wallops() | protocol.ServerTime()):
                self.info_here(render_text(item).rstrip("\n").removeprefix("*** ").split("*** ", 1)[-1])
            case protocol.Current() | protocol.FormatChanged() | ev.Unknown():
                pass  # the client names the room of everything it sends; its own /format json

    def _before_backlog(self, item: ev.Incoming) -> None:
        """A room's join mark waits for its backlog; anything else about that room first (there should be
        nothing: the server sends the backlog right after `joined`), or a pong (everything sent before was
        answered), places it where things stand."""
        if isinstance(item, protocol.Pong):
            for key in list(self._pending_marks):
                self._place_mark(key)
            return
        room = getattr(item, "room", None)
        backlog = isinstance(item, History) and item.reason == "backlog"
        if isinstance(room, str) and room_key(room) in self._pending_marks and not backlog:
            self._place_mark(room_key(room))

    def _place_mark(self, key: str, anchor: int | None = None) -> None:
        entry = self._pending_marks.pop(key, None)
        conversation = self.model.get(key)
        if entry is not None and conversation is not None:
            entry.anchor = anchor
            self.model.add(conversation, entry)

    def _on_welcome(self, e: protocol.Welcome) -> None:
        self.registered = True
        self.phase = Phase.ONLINE
        self.last_error = None
        self.max_line = e.max_line
        self.model.nick = e.nick
        if self.wanted_nick is None:
            self.wanted_nick = e.nick
        if not self.ever_registered:
            self.ever_registered = True
            self._add(self.model.server, EntryKind.STATUS, f"Connected to {self.server_label} as {e.nick}.")
            if self.initial_room:
                self._user_joins.add(room_key(self.initial_room))
                self._queue(f"/join {self.initial_room}")
            return
        rooms = self.model.rooms()
        self._rejoining = {c.key for c in rooms}
        self._status_everywhere(f"Reconnected to {self.server_label} as {e.nick}.")
        for conversation in rooms:
            self._queue(f"/join {conversation.name}")
        self._queue(f"/ping {REJOINED_TOKEN}")  # after the joins: its pong says they are all answered

    def _on_joined(self, e: protocol.Joined) -> None:
        key = room_key(e.room)
        rejoin = key in self.model.conversations
        if self._rejoining is not None and not rejoin and key not in self._user_joins:
            # the server put us in its lobby again, but we had left it: leave, without a word
            self._leaving_quietly.add(key)
            self._queue(f"/leave #{e.room}")
            return
        conversation = self.model.room(e.room)
        conversation.joined = True
        conversation.set_members(e.members, e.ops, e.voiced)
        conversation.topic = e.topic
        n = e.count or len(e.members)  # a quiet room lists only its ops, voiced members and you (0: an older server)
        count = f"{n} member{'s' if n != 1 else ''}"
        if rejoin:
            conversation.catchup_after = conversation.newest_id
            entry = Entry(EntryKind.MARK, f"Rejoined {conversation.title} ({count})", _when(e.time))
        else:
            about = f" Topic: {e.topic}" if e.topic else ""
            entry = Entry(EntryKind.MARK, f"You joined {conversation.title} ({count}).{about}", _when(e.time))
        self._pending_marks[key] = entry  # placed after the backlog, which comes next
        if key in self._user_joins:
            self._user_joins.discard(key)
            self.model.select(key)
        elif self.model.current_key == SERVER_KEY and not rejoin:
            self.model.select(key)

    def _on_message(self, m: ChatMessage) -> None:
        me = self.model.nick or ""
        own = nick_key(m.nick) == nick_key(me)
        if m.private:
            assert m.to is not None
            conversation = self.model.private(m.to if own else m.nick)
        else:
            assert m.room is not None
            conversation = self.model.room(m.room)
        if own:
            self.outgoing.echoed(conversation.key)
        entry = self._add_message(conversation, m, earlier=False)
        if entry is not None and entry.mention and not entry.hidden:
            self.alerts.append(Alert(conversation.key, m.nick, m.text, m.private))

    def _add_message(self, conversation: Conversation, m: ChatMessage, earlier: bool) -> Entry | None:
        me = self.model.nick or ""
        own = nick_key(m.nick) == nick_key(me)
        # a notice shows as a message (its sender asks for no answer; this client has no look of its own for it)
        kind = {MessageKind.MESSAGE: EntryKind.MESSAGE, MessageKind.ACTION: EntryKind.ACTION,
                MessageKind.NOTICE: EntryKind.MESSAGE}.get(m.kind, EntryKind.PRIVATE)
        mention = not own and (m.private or (bool(me) and mentions(m.text, me)))
        entry = Entry(kind, m.text, _when(m.time), nick=m.nick, id=m.id, earlier=earlier, own=own,
                      mention=mention, hidden=self.is_ignored(m.nick))
        return entry if self.model.add(conversation, entry) else None

    def _on_search(self, r: protocol.SearchResults) -> None:
        """Results as lines where the user is, each with its room (or `private`), time, sender and id, and how
        to open one in its context."""
        for line in render_text(r).rstrip("\n").split("\n"):
            self.info_here(line.removeprefix("*** "))
        if r.messages:
            m = r.messages[0]
            own = nick_key(m.nick) == nick_key(self.model.nick or "")
            where = f"#{m.room}" if m.room else f"@{m.to if own else m.nick}"
            self.info_here(f"/history {where} around {m.id} shows a result in its context.")

    def _on_history(self, h: History) -> None:
        key = room_key(h.room)
        conversation = self.model.get(key)
        request = self._take_page_request(key) if h.reason == "page" else None
        if conversation is None or conversation.kind is not Kind.ROOM:
            for m in h.messages:  # /history of a room we are not in: show it here, as lines
                if not self.is_ignored(m.nick):
                    who = f"* {m.nick}" if m.kind is MessageKind.ACTION else f"{m.nick}:"
                    self.info_here(f"#{m.room} {_when(m.time):%Y-%m-%d %H:%M} {who} {m.text}")
            if h.reason == "page":
                self.info_here(f"#{h.room}: {len(h.messages)} message(s){'; there are more' if h.more else ''}.")
            return
        after = conversation.catchup_after
        for m in h.messages:
            self._add_message(conversation, m, earlier=after is None or m.id <= after)
        if h.reason == "backlog":
            if after is None and not h.more:
                self._reached_beginning(conversation)
            elif after is not None and h.more and h.messages and h.messages[0].id > after:
                self._catch_up(conversation, after, h.messages[0].id, CATCHUP_PAGES)  # a gap: fetch what was said
            newest = h.messages[-1].id if h.messages else conversation.newest_id
            self._place_mark(key, anchor=newest)  # what was missed, however late it comes, goes above it
        elif request is not None and request.newer:
            if h.more and h.messages and request.stop_at is not None and h.messages[-1].id < request.stop_at:
                self._catch_up(conversation, h.messages[-1].id, request.stop_at, request.pages_left)
        elif request is not None:
            conversation.fetching = False
            if not h.more:
                self._reached_beginning(conversation)

    def _reached_beginning(self, conversation: Conversation) -> None:
        if not conversation.at_beginning:
            conversation.at_beginning = True
            self.model.add_at_top(conversation, Entry(EntryKind.MARK, f"The beginning of {conversation.title}"))

    def _on_part(self, e: protocol.Part) -> None:
        key = room_key(e.room)
        if self.model.nick and nick_key(e.nick) == nick_key(self.model.nick):
            if key in self._leaving_quietly:
                self._leaving_quietly.discard(key)
                return
            if key in self.model.conversations:
                self.model.close(key)
                self._add(self.model.server, EntryKind.STATUS, f"You left #{e.room}.")
            return
        conversation = self.model.get(key)
        if conversation is not None:
            conversation.remove_member(e.nick)
            why = f" ({e.reason})" if e.reason else ""
            self._add(conversation, EntryKind.PART, f"{e.nick} left {conversation.title}{why}", nick=e.nick,
                      time=_when(e.time))

    def _on_quit(self, e: protocol.Quit) -> None:
        why = f" ({e.reason})" if e.reason else ""
        for conversation in self.model.rooms():
            if conversation.remove_member(e.nick):
                self._add(conversation, EntryKind.QUIT, f"{e.nick} quit{why}", nick=e.nick, time=_when(e.time))
        private = self.model.get(nick_key(e.nick))
        if private is not None and private.kind is Kind.PRIVATE:
            self._add(private, EntryKind.QUIT, f"{e.nick} quit{why}", nick=e.nick, time=_when(e.time))

    def _on_nick(self, e: protocol.NickChange) -> None:
        mine = self.model.nick is not None and nick_key(e.old) == nick_key(self.model.nick)
        if mine:
            self.model.nick = e.new
            if self._reclaiming or nick_key(e.new) != nick_key(self.wanted_nick or ""):
                self.wanted_nick = e.new  # taken back, or changed on purpose: this is the nick to keep
            self._reclaiming = False
        text = f"You are now known as {e.new}" if mine else f"{e.old} is now known as {e.new}"
        when = _when(e.time)
        for conversation in self.model.rooms():
            if conversation.remove_member(e.old) or mine:
                conversation.add_member(e.new)
                self._add(conversation, EntryKind.NICK, text, nick=e.new, time=when)
        if not mine:
            self.model.rename_private(e.old, e.new)
            private = self.model.get(nick_key(e.new))
            if private is not None and private.kind is Kind.PRIVATE:
                self._add(private, EntryKind.NICK, text, nick=e.new, time=when)
        else:
            self._add(self.model.server, EntryKind.NICK, text, nick=e.new, time=when)

    def _on_topic(self, e: protocol.Topic) -> None:
        conversation = self.model.get(room_key(e.room))
        if conversation is not None:
            conversation.topic = e.topic
        when = _when(e.time) if e.time is not None else None
        if e.change and conversation is not None:
            text = f"{e.nick} set the topic: {e.topic}" if e.topic else f"{e.nick} cleared the topic"
            self._add(conversation, EntryKind.TOPIC, text, nick=e.nick, time=when)
        elif e.topic:
            by = f" (set by {e.nick} on {when:%Y-%m-%d %H:%M} UTC)" if e.nick and when else ""
            self.info_here(f"Topic of #{e.room}: {e.topic}{by}")
        else:
            self.info_here(f"No topic is set for #{e.room}.")

    def _on_rooms(self, e: protocol.RoomList) -> None:
        if not e.rooms:
            self.info_here("No rooms have anyone in them.")
        for info in e.rooms:
            self.model.known_rooms[room_key(info.room)] = info.room
            topic = f": {info.topic}" if info.topic else ""
            self.info_here(f"#{info.room} ({info.members} member{'s' if info.members != 1 else ''}){topic}")

    def _on_pong(self, e: protocol.Pong) -> None:
        token = e.token or ""
        if token == REJOINED_TOKEN:
            self._rejoining = None
        if not self.outgoing.answered(token):
            self.info_here(f"pong {token}".rstrip())

    def _on_error(self, e: protocol.Error) -> None:
        if not self.registered and e.code in ("nick_taken", "invalid_nick", "already_logged_in") \
                and self._on_nick_refused(e):
            return
        if self._reclaiming and e.command in ("nick", "login") and e.code in ("nick_taken", "already_logged_in"):
            self._reclaiming = False  # still taken (our old session, still on): try again later, quietly
            return
        if e.command == "login" and e.code in ("bad_password", "no_such_account"):
            self.password = None  # it will not work next time either
            self._reclaiming = False
        if e.command == "join" and e.code in ("banned", "invite_only", "bad_key", "room_full"):
            self._on_join_refused(e)
            return
        if e.command == "history" and self._pages:
            request = self._pages.popleft()
            conversation = self.model.get(request.key)
            if conversation is not None:
                conversation.fetching = False
        self.error_here(f"{e.message}")

    def _on_nick_refused(self, e: protocol.Error) -> bool:
        """Our nick was refused before registration. True when handled without showing the error."""
        if self.ever_registered and e.code in ("nick_taken", "already_logged_in") and self.wanted_nick:
            # after a reconnect our old connection may still hold the nick: use a stand-in, take it back later
            self._alt_attempt += 1
            self._queue(f"/nick {alternate_nick(self.wanted_nick, self._alt_attempt)}")
            return True
        self.wanted_nick = None  # ask the user for another
        self._add(self.model.server, EntryKind.ERROR, e.message)
        if self.model.current_key != SERVER_KEY:
            self.error_here(e.message)
        self._add(self.model.server, EntryKind.INFO, "Type a nickname and press Enter.")
        return True

    def reclaim_nick(self) -> None:
        """Try to take our nick back from whoever holds it (called from time to time by the session)."""
        if self.wants_nick_back:
            assert self.wanted_nick is not None
            self._reclaiming = True
            self._queue(self._claim(self.wanted_nick))

    def _claim(self, nick: str) -> str:
        """The line that takes `nick`: a login when we know its password, else a plain /nick."""
        if self.password is not None:
            return f"/login {nick} {self.password}"
        return f"/nick {nick}"

    def log_in(self, password: str) -> Outcome:
        """The user typed the password the server asked for (PasswordWanted)."""
        nick, self.password_for = self.password_for, None
        if nick is None:
            return Outcome.LOCAL
        self.password = password
        self.wanted_nick = nick
        return self.send(f"/login {nick} {password}")

    def _on_password_wanted(self, e: protocol.PasswordWanted) -> None:
        if self._reclaiming:  # our stand-in asked for the nick back, and it is an account we cannot log in to
            self._reclaiming = False
            self.wanted_nick = self.model.nick
            self.info_here(f"{e.nick} is a registered nickname: /login {e.nick} PASSWORD to take it back.")
            return
        self.password_for = e.nick
        self.info_here(f"{e.nick} is a registered nickname. Type its password (it is not shown) and press Enter, "
                       "or /nick another name.")

    def _on_account(self, e: protocol.AccountChange) -> None:
        if e.change == "logged_out":
            self.password = None
            self.wanted_nick = e.nick or self.wanted_nick
            self.info_here(f"You are logged out of {e.account}; you are now {e.nick}.")
        elif e.change == "registered":
            self.info_here(f"{e.account} is registered to you, and you are logged in.")
        elif e.change == "logged_in":
            self.wanted_nick = e.account
            self._add(self.model.server, EntryKind.STATUS, f"Logged in as {e.account}.")
        else:
            self.info_here(f"The password of {e.account} is changed.")

    def _on_kick(self, e: protocol.Kick) -> None:
        key = room_key(e.room)
        conversation = self.model.get(key)
        why = f" ({e.reason})" if e.reason else ""
        if self.model.nick and nick_key(e.nick) == nick_key(self.model.nick):
            if conversation is not None:
                conversation.joined = False
                conversation.set_members([], [], [])
                self._add(conversation, EntryKind.ERROR, f"You were put out of {conversation.title} by {e.by}{why}. "
                          f"/join {e.room} to go back in, unless you are banned.", time=_when(e.time))
            self._add(self.model.server, EntryKind.STATUS, f"{e.by} put you out of #{e.room}{why}.")
            return
        if conversation is not None:
            conversation.remove_member(e.nick)
            self._add(conversation, EntryKind.PART, f"{e.nick} was kicked by {e.by}{why}", nick=e.nick,
                      time=_when(e.time))

    def _on_mode(self, e: protocol.Mode) -> None:
        conversation = self.model.get(room_key(e.room))
        if conversation is None:
            return
        if e.target is not None and e.mode[1] in "ov":
            chosen = conversation.ops if e.mode[1] == "o" else conversation.voiced
            if e.mode[0] == "+":
                chosen.add(nick_key(e.target))
            else:
                chosen.discard(nick_key(e.target))
        self._add(conversation, EntryKind.TOPIC, render_text(e).rstrip("\n").split("*** ", 1)[-1], nick=e.nick,
                  time=_when(e.time))

    def _on_join_refused(self, e: protocol.Error) -> None:
        """The server would not let us into a room (banned, invite-only, a key, full): we are not in it."""
        key = room_key(e.subject or "")
        self._user_joins.discard(key)
        if self._rejoining is not None:
            self._rejoining.discard(key)
        conversation = self.model.get(key)
        if conversation is not None and conversation.kind is Kind.ROOM:
            conversation.joined = False
            self._add(conversation, EntryKind.ERROR, e.message)
            self._pending_marks.pop(key, None)
        if conversation is not self.model.current:
            self.error_here(e.message)

    def internal_error(self, raw: bytes, error: Exception) -> None:
        shown = raw[:200].decode("utf-8", "replace")
        self._add(self.model.server, EntryKind.ERROR,
                  f"Could not handle a line from the server ({type(error).__name__}: {error}): {shown}")

    # -------------------------------------------------------------------------------------------- output

    def _add(self, conversation: Conversation, kind: EntryKind, text: str, *, nick: str | None = None,
             time: datetime | None = None) -> None:
        hidden = kind in (EntryKind.JOIN, EntryKind.PART, EntryKind.QUIT, EntryKind.NICK) and self.is_ignored(nick)
        self.model.add(conversation, Entry(kind, text, time or now(), nick=nick, hidden=hidden))

    def info_here(self, text: str) -> None:
        self._add(self.model.current, EntryKind.INFO, text)

    def error_here(self, text: str) -> None:
        self._add(self.model.current, EntryKind.ERROR, text)

    def _status_everywhere(self, text: str) -> None:
        for conversation in (self.model.server, *self.model.rooms()):
            self._add(conversation, EntryKind.STATUS, text)
