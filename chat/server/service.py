"""The chat services: what each command does to the state, and what it asks to store and deliver.

Everything here runs on the event-loop thread and returns nothing to send directly: it appends deliveries and
writes to the `Outbox` it is given (see outbox.py). Every refusal is a `ChatError`, answered with one `error`
event; the connection stays open. Accounts (chat.server.accounts) and room moderation (chat.server.moderation)
are services of their own, reached from here.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from typing import assert_never

from chat import __version__
from chat.protocol import commands as cmd
from chat.protocol.codec import Frame
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import (
    Away,
    ChatMessage,
    Current,
    DeliveryState,
    Error,
    Event,
    Hello,
    Help,
    History,
    Join,
    Joined,
    MessageKind,
    NickChange,
    Notice,
    Online,
    Part,
    Person,
    Pong,
    Quit,
    RoomInfo,
    RoomList,
    SearchResults,
    ServerTime,
    TagMessage,
    Targets,
    Topic,
    UserModes,
    Wallops,
    Welcome,
    Who,
    WhoWas,
)
from chat.protocol.names import check_nick, check_room, name_key
from chat.search.query import parse_search
from chat.search.scope import SearchScope
from chat.server import moderation
from chat.server.account_worker import AccountJob
from chat.server.accounts import Accounts
from chat.server.config import ServerConfig
from chat.server.member import Member
from chat.server.moderation import Moderation
from chat.server.outbox import Backlog, CloseAfterFlush, Goodbye, Outbox, SetFormat
from chat.server.reads import (
    AccountRead,
    HistoryRequest,
    HolderRead,
    RoomListRead,
    RoomLookup,
    SearchRequest,
    TargetsRead,
)
from chat.server.state import ChatState, Room
from chat.storage.records import RoomEventRecord, SeenUser, TopicChange

NICK_PROMPT = "Type a nickname and press Enter."
PASSWORD_PROMPT = "Type the password of {nick} on the next line, or choose another nickname."

log = logging.getLogger("chat.server")


class ChatService:
    def __init__(self, state: ChatState, config: ServerConfig, clock: Callable[[], float]) -> None:
        self.state = state
        self.config = config
        self.clock = clock
        self._lobby_key = name_key(config.lobby) if config.lobby else None  # the server's own room: free to create
        self.accounts = Accounts(self)
        self.moderation = Moderation(self)
        self.cluster = config.cluster  # room events are written for the other nodes (chat.server.cluster)

    def room_event(self, room: Room, kind: str, nick: str, out: Outbox, data: dict[str, object] | None = None,
                   message: ChatMessage | None = None) -> None:
        """Clustered: tell the other nodes what happened in `room` (written with the outbox's commit)."""
        out.store_room(room)  # its row carries the event numbers
        out.writes.events.append(RoomEventRecord(room.id, kind, nick, data, message, room.applied))

    # ---------------------------------------------------------------------------------- connection events

    def connected(self, m: Member, out: Outbox) -> None:
        m.host = self.config.server_name
        m.last_active = self.clock()  # /whois's idle time is on this clock (the loop made it on its monotonic one)
        out.reply(m, Hello(self.config.server_name, __version__, self.config.max_line))

    def handle(self, m: Member, command: cmd.Command, out: Outbox) -> None:
        """Carry out one command from a member; a refusal is answered with one `error` event."""
        try:
            if m.password_for is not None and isinstance(command, cmd.Say):  # the line after PasswordWanted
                try:
                    self.accounts.login(m, m.password_for, command.text, out, prompted=True)
                except ChatError:
                    if m.registered:  # a guest with a nick gets one try; its next plain lines go to its room again
                        m.password_for = None
                    raise
                m.password_for = None  # (not before: a bug meanwhile must not log the line, see `loggable`)
                return
            if not m.registered:
                if isinstance(command, cmd.Say):  # the tutorial's flow: the first plain line is the nickname
                    command = cmd.Nick.model_construct(nick=check_nick(command.text.strip()))
                elif command.needs_nick:
                    raise ChatError(ErrorCode.NOT_REGISTERED, f"Choose a nickname first. {NICK_PROMPT}")
            self.dispatch(m, command, out)
        except ChatError as e:
            e.command = e.command or command.name
            self.refused(m, e, out)

    def refused(self, m: Member, error: ChatError, out: Outbox) -> None:
        """A refusal: of a command, or of a frame its codec could not take (too long, not UTF-8, malformed)."""
        out.reply(m, Error(error.code, error.message, error.command, error.subject, error.room))
        if not m.registered and not m.gone:
            out.reply(m, Notice(PASSWORD_PROMPT.format(nick=m.password_for) if m.password_for else NICK_PROMPT))

    def loggable(self, m: Member, frame: Frame) -> Frame:
        """What of a frame may be logged: never a password (the line after PasswordWanted, or /login's)."""
        if m.password_for is not None:
            return "[a line that may be a password]"
        return cmd.loggable(frame) if isinstance(frame, str) else frame

    def log_failed_login(self, m: Member, nick: str, why: str) -> None:
        log.info("failed login to %s from %s: %s", nick, m.address or "?", why,
                 extra={"event": "login_failed", "account": nick, "peer": m.address, "reason": why})

    def disconnected(self, m: Member, reason: str, out: Outbox) -> None:
        """The chat session ended, however it ended: free the nick now and tell the rooms."""
        m.gone = True
        self.accounts.forget(m)
        if not m.registered:
            return
        now = self.clock()
        out.deliver(self.state.co_members(m, self.config.quiet_above), Quit(m.nick, reason, now))
        if self.cluster:
            origin = f"{self.config.node}:{m.id}:{now}"
            for room in m.rooms.values():
                self.room_event(room, "quit", m.nick, out, {"reason": reason, "time": now, "origin": origin})
            out.writes.presence_gone.append((m.key, m.id))
        self._leave_everything(m)
        self.state.departed.append((m.key, m.person()))
        out.writes.users.append(SeenUser(m.nick, m.key, now))

    def node_lost(self, m: Member, message: str, out: Outbox) -> None:
        """Clustered, this node was reaped by the others: they told everyone its users quit, and others may hold
        their nicks by now. `m`'s session ends here without a word to anyone but itself (a goodbye saying why):
        what its node wrote since the reaping is announced gone by the writer (WriteBatch.rejoin)."""
        m.gone = True
        self.accounts.forget(m)
        if m.registered:
            self._leave_everything(m)
        out.reply(m, Goodbye(message, ErrorCode.NODE_LOST))
        out.reply(m, CloseAfterFlush())

    def _leave_everything(self, m: Member) -> None:
        """`m` is out of its rooms (told already, or not to be told) and its nick is free."""
        for room in m.rooms.values():
            room.remove_member(m)
            self.state.room_emptied(room)
        m.rooms.clear()
        m.current = None
        m.registered = False
        if self.state.nicks.get(m.key) is m:
            del self.state.nicks[m.key]

    def end(self, m: Member, reason: str, code: ErrorCode | None, detail: str, out: Outbox) -> None:
        """The server ends a member's session for cause (flood, a full send queue, no nickname in time): its
        rooms hear it quit, and it gets a goodbye after everything already accepted from it (its echoes)."""
        self.disconnected(m, detail, out)
        out.reply(m, Goodbye(reason, code))
        out.reply(m, CloseAfterFlush())

    # ---------------------------------------------------------------------------------------- dispatch

    def dispatch(self, m: Member, c: cmd.Command, out: Outbox) -> None:
        match c:
            case cmd.Say():
                self.say(m, self._current(m), MessageKind.MESSAGE, c.text, out)
            case cmd.Me():
                self.say(m, self._speaking_room(m, c.room) if c.room else self._current(m), MessageKind.ACTION,
                         c.text, out, c.client_tags)
            case cmd.Msg():
                self.msg(m, c, out)
            case cmd.Nick():
                if not m.registered and (c.user or c.realname):  # who it says it is, given with its first nick
                    m.user, m.realname = c.user, c.realname
                self.nick(m, c.nick, out)
            case cmd.Away():
                m.away = c.text[:cmd.AWAY_MAX] if c.text else None
                out.reply(m, Away(m.nick, m.away, you=True))
                out.deliver(self.state.co_members(m), Away(m.nick, m.away, changed=True))
            case cmd.Join():
                self.join(m, c.room, out, c.key)
            case cmd.Leave():
                self.leave(m, c.room, c.reason, out)
            case cmd.Rooms():
                self.rooms(m, out)
            case cmd.Who():
                if c.mask is not None:
                    self.who_matches(m, c.mask, out)
                else:
                    self.who(m, c.room, out)
            case cmd.Topic():
                self.topic(m, c, out)
            case cmd.History():
                self.history(m, c, out)
            case cmd.Targets():
                account = m.account
                rooms = {room.id: room.name for room in m.rooms.values()}
                out.ask(TargetsRead(m, rooms, account.id if account else None, c.after_ms, c.before_ms, c.count), m)
            case cmd.Search():
                self.search(m, c, out)
            case cmd.Help():
                out.reply(m, Help(c.command, cmd.help_lines(c.command)))
            case cmd.Quit():
                self.quit(m, c.reason, out)
            case cmd.Format():
                out.reply(m, SetFormat(c.format))
            case cmd.Ping():
                out.reply(m, Pong(c.token))
            case cmd.Register():
                self.accounts.register(m, c.password.get_secret_value(), out)
            case cmd.Login():
                self.accounts.login(m, c.nick, c.password.get_secret_value(), out, take_nick=c.take_nick)
            case cmd.Logout():
                self.accounts.logout(m, out)
            case cmd.Password():
                self.accounts.change_password(m, c.password.get_secret_value(), out)
            case cmd.Whois():
                self.accounts.whois(m, c.nick, out)
            case cmd.Whowas():
                self.whowas(m, c, out)
            case cmd.Online():
                out.reply(m, self._online())
            case cmd.Time():
                out.reply(m, ServerTime(self.clock()))
            case cmd.Tagmsg():
                self.tagmsg(m, c, out)
            case cmd.Oper():
                self.accounts.oper(m, c.account, c.password.get_secret_value(), out)
            case cmd.Kill():
                self.kill(m, c.nick, c.reason, out)
            case cmd.Wallops():
                self.wallops(m, c.text, out)
            case cmd.Umode():
                self.umode(m, c.modes, out)
            case cmd.Op() | cmd.Deop():
                self.moderation.op(m, c.room, c.nick, isinstance(c, cmd.Op), out)
            case cmd.Kick():
                self.moderation.kick(m, c.room, c.nick, c.reason, out)
            case cmd.Ban() | cmd.Unban():
                self.moderation.ban(m, c.room, c.nick, isinstance(c, cmd.Ban), out)
            case cmd.Invite():
                self.moderation.invite(m, c.nick, c.room, out)
            case cmd.Mode():
                self.moderation.mode(m, c, out)
            case _:
                assert_never(c)  # type: ignore[arg-type]

    # ---------------------------------------------------------------------------------------- commands

    def say(self, m: Member, room: Room, kind: MessageKind, text: str, out: Outbox,
            client_tags: dict[str, str] | None = None) -> None:
        moderation.check_speak(m, room)
        message = ChatMessage(self.state.new_message_id(), kind, m.nick, text, self.clock(), room=room.name,
                              state=DeliveryState.PENDING, client_tags=client_tags)
        room.remember(message)
        m.sent(message)
        m.last_active = message.time
        out.store_message(message, room, m)
        out.deliver(room.members, message)
        if room.key not in m.rooms:  # from outside a -n room: its receipt (its echo) comes like a member's
            out.reply(m, message)
        if self.cluster:
            self.room_event(room, "message", m.nick, out, message=message)

    def msg(self, m: Member, c: cmd.Msg, out: Outbox) -> None:
        if c.to_room:
            kind = MessageKind.NOTICE if c.notice else MessageKind.MESSAGE
            self.say(m, self._speaking_room(m, c.target), kind, c.text, out, c.client_tags)
            return
        target = self.state.nicks.get(name_key(c.target))
        if target is None:  # an account gets it at its next login; anyone else is refused (no_such_nick)
            self.accounts.private_offline(m, c.target, c.text, out, c.notice)
            return
        self.accounts.private(m, target, c.text, out, c.notice, c.client_tags)

    def tagmsg(self, m: Member, c: cmd.Tagmsg, out: Outbox) -> None:
        """IRCv3's TAGMSG: tags without text, to whoever a message there would reach (the sender gets its own
        copy as a reply: its codec shows it only with echo-message). Not stored."""
        if c.target.startswith("#"):
            room = self._speaking_room(m, c.target)
            moderation.check_speak(m, room)
            tm = TagMessage(self.state.new_message_id(), m.nick, c.client_tags, self.clock(), room=room.name)
            out.deliver([x for x in room.members if x is not m], tm)
        else:
            target = self.state.nicks.get(name_key(c.target))
            if target is None:
                raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {c.target} is online.", subject=c.target)
            tm = TagMessage(self.state.new_message_id(), m.nick, c.client_tags, self.clock(), to=target.nick)
            if target is not m:
                out.deliver((target,), tm)
        out.reply(m, tm)

    def nick(self, m: Member, nick: str, out: Outbox) -> None:
        key = name_key(nick)
        holder = self.state.nicks.get(key)
        if holder is not None and holder is not m:
            raise ChatError(ErrorCode.NICK_TAKEN, f"The nickname {nick} is taken; choose another.", subject=nick)
        if m.registered and nick == m.nick:
            return  # nothing changes, nothing is written
        account = m.account
        if account is not None:  # logged in, your nickname is your account's
            if m.registered and key != account.key:
                raise ChatError(ErrorCode.LOGGED_IN, f"You are logged in as {account.nick}: your nickname is your "
                                "account's. /logout first to use another.", subject=nick)
            self.take_nick(m, nick if key == account.key else account.nick, out)
            return
        if m.registered and key == m.key:  # another spelling of the nick it holds
            self.take_nick(m, nick, out)
            return
        self.accounts.claim(m, nick, out)  # is it registered? take_nick follows if not

    def take_nick(self, m: Member, nick: str, out: Outbox) -> None:
        """`m` takes `nick` (free, and registered only to its own account): its first nick, or a change."""
        key = name_key(nick)
        holder = self.state.nicks.get(key)
        if holder is not None and holder is not m:
            raise ChatError(ErrorCode.NICK_TAKEN, f"The nickname {nick} is taken; choose another.", subject=nick)
        if m.registered and nick == m.nick:
            return
        now = self.clock()
        out.writes.users.append(SeenUser(nick, key, now))
        if self.cluster:  # its presence row names this member (see chat.storage.cluster.claim_presence)
            out.writes.presence_held.append((key, nick, m.id))
        if not m.registered:
            self._register(m, nick, key, out)
            return
        old = m.nick
        self.state.departed.append((m.key, m.person()))
        if self.cluster:
            origin = f"{self.config.node}:{m.id}:{now}"
            for room in m.rooms.values():
                self.room_event(room, "nick", old, out, {"new": nick, "time": now, "origin": origin})
            if key != m.key:
                out.writes.presence_gone.append((m.key, m.id))
        del self.state.nicks[m.key]
        m.nick, m.key = nick, key
        self.state.nicks[key] = m
        for room in m.rooms.values():
            room.renamed(m)
        out.deliver((m, *self.state.co_members(m)), NickChange(old, nick, now))

    def _register(self, m: Member, nick: str, key: str, out: Outbox) -> None:
        m.nick, m.key, m.registered = nick, key, True
        m.signed_on = self.clock()
        self.state.nicks[key] = m
        self.state.most_online = max(self.state.most_online, len(self.state.nicks))
        out.reply(m, Welcome(nick, self.config.max_line, self._online()))
        if self.config.lobby:
            self.join(m, self.config.lobby, out)

    def join(self, m: Member, name: str, out: Outbox, room_key: str | None = None) -> None:
        key = name_key(name)
        room = self.state.rooms.get(key)
        if room is not None and key in m.rooms:  # already there: it just becomes the current room
            m.current = room
            out.reply(m, Current(room.name))
            return
        if len(m.rooms) >= self.config.max_rooms_per_client:
            raise ChatError(ErrorCode.TOO_MANY_ROOMS, f"You are in {len(m.rooms)} rooms, the most one may be in; "
                            "/leave one first.", subject=name)
        if room is None:  # not in memory: read it from the database first; the join completes in room_found
            lookup = self._look_up(m, key, name, out)
            lookup.joiners.append(m)
            if room_key is not None:
                lookup.keys[m.id] = room_key
            return
        self._enter(m, room, out, room_key)

    def _look_up(self, m: Member, key: str, name: str, out: Outbox) -> RoomLookup:
        lookup = self.state.lookups.get(key)
        if lookup is None:
            lookup = self.state.lookups[key] = RoomLookup(key, name, self.config.backlog + 1)
        out.ask(lookup, m)
        return lookup

    def room_found(self, lookup: RoomLookup, out: Outbox) -> None:
        """A room lookup was answered (on the loop thread): complete the joins and topic questions waiting on it."""
        state = self.state
        if state.lookups.get(lookup.key) is lookup:
            del state.lookups[lookup.key]
        if lookup.error is None and not lookup.read:  # skipped, its joiners gone: those who came since ask again
            self._look_again(lookup, out)
            return
        if (lookup.found is None and lookup.error is None and lookup.key not in state.rooms
                and lookup.key not in state.unsaved_rooms
                and state.rows_written_lately.get(lookup.key, 0) > lookup.handed_over_after):
            self._look_again(lookup, out)  # it read the database before the room's row was committed
            return
        for m in lookup.askers:
            if m.gone:
                continue
            if lookup.error is not None:
                out.reply(m, Error(ErrorCode.HISTORY_UNAVAILABLE, STORAGE_UNAVAILABLE, "topic", lookup.name))
            elif (room := state.rooms.get(lookup.key) or state.unsaved_rooms.get(lookup.key) or (
                    state.room_from(lookup.found) if lookup.found else None)) is not None:
                try:
                    self._tell_topic(m, room, out)
                except ChatError as e:
                    self.refused(m, e, out)
            else:
                out.reply(m, Error(ErrorCode.NO_SUCH_ROOM, f"There is no room #{lookup.name}.", "topic", lookup.name))
        for m in lookup.joiners:
            if m.gone:
                continue
            room = None
            try:
                room = self.state.rooms.get(lookup.key)
                if room is None:
                    if lookup.error is not None:
                        raise ChatError(ErrorCode.HISTORY_UNAVAILABLE, STORAGE_UNAVAILABLE, subject=lookup.name)
                    room = self._bring_in(m, lookup)
                if lookup.key in m.rooms:  # joined it meanwhile (another lookup of the same name)
                    continue
                self._enter(m, room, out, lookup.keys.get(m.id))
            except ChatError as e:
                e.command = "join"
                self.refused(m, e, out)
                if room is not None:
                    self.state.room_emptied(room)  # brought in for a joiner who may not join: out it goes

    def _look_again(self, stale: RoomLookup, out: Outbox) -> None:
        """Ask `stale`'s question again, for those still waiting: the new lookup runs after the current writes."""
        for m in stale.joiners:
            if not m.gone:
                lookup = self._look_up(m, stale.key, stale.name, out)
                lookup.joiners.append(m)
                if m.id in stale.keys:
                    lookup.keys[m.id] = stale.keys[m.id]
        for m in stale.askers:
            if not m.gone:
                self._look_up(m, stale.key, stale.name, out).askers.append(m)

    def _bring_in(self, m: Member, lookup: RoomLookup) -> Room:
        state = self.state
        if lookup.found is not None:
            return state.found_room(lookup.found)
        if (unsaved := state.unsaved_rooms.get(lookup.key)) is not None:  # its row is still to be written
            unsaved.end_session()
            state.rooms[unsaved.key] = unsaved
            state.mark_hidden(unsaved)
            return unsaved
        config = self.config
        if lookup.key != self._lobby_key and not m.take_new_room(self.clock(), config.new_rooms_burst,
                                                                  config.new_rooms_per_minute):
            raise ChatError(ErrorCode.TOO_MANY_ROOMS, f"You have created too many rooms lately (at most "
                            f"{config.new_rooms_per_minute:g} a minute); join an existing one or wait a little.",
                            subject=lookup.name)
        room = self.state.new_room(lookup.name, self.clock())
        # the first logged-in user to join a new room owns it; a guest's has no owner, nor has the lobby (the
        # server's room: its admins moderate it)
        if m.account is not None and lookup.key != self._lobby_key:
            room.settings.owner_id, room.settings.owner_nick = m.account.id, m.account.nick
        return room

    def _enter(self, m: Member, room: Room, out: Outbox, key: str | None = None) -> None:
        """`m` joins `room`, now that the room is known: if its settings let it in."""
        spent = moderation.check_join(m, room, key)
        if spent is not None:
            self.moderation.used_invite(room, spent, m, out)
        now = self.clock()
        quiet = self._quiet(room, len(room.members) + 1)
        if (not room.members and not room.remote and moderation.takes_session_op(room)
                and room.key != self._lobby_key):
            room.session_ops.add(m)  # IRC's rule, for rooms nobody owns: the first one in is an op while there
        if not quiet:
            out.deliver(room.members, Join(room.name, m.nick, now, m.away))
        if self.cluster:
            self.room_event(room, "join", m.nick, out, {"time": now})
        room.add_member(m)
        m.rooms[room.key] = room
        m.current = room
        messages, more = room.backlog(self.config.backlog, self.config.page_budget)
        m.cursors[room.key] = messages[0].id if messages else self.state.next_message_id
        ops, voiced = moderation.ops_of(room, self.state.logged_in)
        if quiet:  # its ops and voiced members, and you (/who lists everyone): no copy of thousands per joiner
            shown, count = sorted({*ops, *voiced, m.nick}, key=str.lower), room.size()
        else:
            shown = room.everyone()
            count = len(shown)
        out.reply(m, Joined(room.name, shown, room.topic, now, ops, voiced, quiet, count, room.topic_by,
                            room.topic_at, room.settings.secret))
        if messages:
            out.reply(m, Backlog(room.name, messages, more))

    def leave(self, m: Member, name: str | None, reason: str | None, out: Outbox) -> None:
        room = self._member_room(m, name) if name else self._current(m)
        now = self.clock()
        out.deliver((m,) if self._quiet(room) else room.members, Part(room.name, m.nick, reason, now))
        self.remove_from_room(m, room, out, reason, now)

    def remove_from_room(self, m: Member, room: Room, out: Outbox, reason: str | None = None,
                         now: float | None = None, told_others: bool = False) -> None:
        """`m` is out of `room` (it left, or was kicked): its rooms told already. Clustered, the other nodes are
        told it left, unless `told_others` (a kick: its own event, written by the kicker's node)."""
        if self.cluster and not told_others:
            self.room_event(room, "part", m.nick, out, {"reason": reason, "time": now or self.clock()})
        room.remove_member(m)
        self.state.room_emptied(room)
        del m.rooms[room.key]
        m.cursors.pop(room.key, None)
        if m.current is room:
            m.current = next(reversed(m.rooms.values()), None)
            out.reply(m, Current(m.current.name if m.current else None))

    def _quiet(self, room: Room, members: int | None = None) -> bool:
        """Whether a room of `members` (now: its own count) is too large for its joins, leaves and quits to be
        announced (`--quiet-above`): in a room of thousands they would be most of what it shows."""
        limit = self.config.quiet_above
        return limit > 0 and (len(room.members) if members is None else members) > limit

    def rooms(self, m: Member, out: Outbox) -> None:
        """The busiest rooms; outsiders do not see hidden ones (invite-only or secret), nor count them. Clustered,
        they are counted on every node, from the database (answered in `rooms_read`)."""
        if self.cluster:
            may: list[int] = []
            may_not: list[int] = []
            for key in self.state.hidden:
                closed = self.state.rooms[key]
                (may if moderation.may_see(m, closed) else may_not).append(closed.id)
            out.ask(RoomListRead(m, may, may_not, moderation.is_admin(m)), m)
            return
        busiest = self.state.busiest(self.clock())
        hidden = self.state.hidden
        if hidden:
            busiest = [r for r in busiest if r.key not in hidden or moderation.may_see(m, r)]
            total = len(self.state.rooms) - sum(
                1 for k in hidden if not moderation.may_see(m, self.state.rooms[k]))
        else:
            total = len(self.state.rooms)
        out.reply(m, RoomList([RoomInfo(r.name, len(r.members), r.topic) for r in busiest], total))

    def targets_read(self, read: TargetsRead) -> Event:
        """/targets, read (on the loop thread)."""
        if read.error is not None:
            return Error(ErrorCode.HISTORY_UNAVAILABLE, HISTORY_FAILED, "targets")
        return Targets(read.targets)

    def rooms_read(self, read: RoomListRead) -> Event:
        """A clustered /rooms, read (on the loop thread)."""
        if read.error is not None:
            return Error(ErrorCode.HISTORY_UNAVAILABLE, STORAGE_UNAVAILABLE, "rooms")
        return RoomList([RoomInfo(r.name, r.members, r.topic) for r in read.rooms], read.total)

    def who(self, m: Member, name: str | None, out: Outbox) -> None:
        if name is None:
            room = self._current(m)
        else:
            found = self.state.rooms.get(name_key(name))
            # nobody is in it (it may have a history: rooms are in memory while someone is in them), or it is
            # hidden (invite-only or secret) and `m` is not of it: it looks empty
            if found is None or not moderation.may_see(m, found):
                out.reply(m, Who(name, []))
                return
            room = found
        ops, voiced = moderation.ops_of(room, self.state.logged_in)
        # the members here, and those of other nodes (clustered: only their nicks are known here)
        people = [x.person() for x in room.members]
        here = {name_key(p.nick) for p in people}
        people += [Person(nick, nick, nick) for key, nick in room.remote.items() if key not in here]
        people.sort(key=lambda p: p.nick.lower())
        out.reply(m, Who(room.name, [p.nick for p in people], ops, voiced, people, secret=room.settings.secret))

    def _online(self) -> Online:
        state = self.state
        return Online(len(state.nicks), state.most_online, len(state.rooms))

    def whowas(self, m: Member, c: cmd.Whowas, out: Outbox) -> None:
        key, wanted = name_key(c.nick), c.count or cmd.WHOWAS_MAX
        found = []
        for gone_key, was in reversed(self.state.departed):
            if gone_key == key:
                found.append(was)
                if len(found) >= wanted:
                    break
        out.reply(m, WhoWas(c.nick, found))

    def who_matches(self, m: Member, mask: str, out: Outbox) -> None:
        """The people a nick or a mask (* and ?) names: anyone online by an exact nick; with a wildcard, those
        who share a room with `m`, and `m` itself (not the whole server: nobody lists strangers). Clustered, the
        same across the nodes: an exact nick held on another node is asked of the database (answered in
        `holder_read`), and a wildcard also matches the other nodes' members of `m`'s rooms."""
        if "*" not in mask and "?" not in mask:
            target = self.state.nicks.get(name_key(mask))
            if target is None and self.cluster and self.config.node:
                out.ask(HolderRead(m, name_key(mask), mask, self.config.node), m)
                return
            people = [target.person()] if target is not None else []
        else:
            pattern = mask.lower().replace("[", "[[]")
            people = [x.person() for x in (m, *self.state.co_members(m))
                      if x.registered and fnmatch.fnmatchcase(x.nick.lower(), pattern)]
            if self.cluster:  # the members other nodes hold in `m`'s rooms (only their nicks are known here)
                nicks = self.state.nicks
                remote = {key: nick for room in m.rooms.values() for key, nick in room.remote.items()
                          if key not in nicks and fnmatch.fnmatchcase(key, pattern)}
                people += [Person(nick, nick, nick) for nick in remote.values()]
            people = sorted(people, key=lambda p: p.nick.lower())[:WHO_MATCHES_MAX]
        out.reply(m, Who("", [p.nick for p in people], people=people, mask=mask))

    def holder_read(self, read: HolderRead) -> Event:
        """A clustered /who of a nick nobody here holds, read: its holder on another node, if any."""
        if read.error is not None:
            return Error(ErrorCode.HISTORY_UNAVAILABLE, STORAGE_UNAVAILABLE, "who")
        people = [Person(read.nick, read.nick, read.nick)] if read.nick is not None else []
        return Who("", [p.nick for p in people], people=people, mask=read.mask)

    def _tell_topic(self, m: Member, room: Room, out: Outbox) -> None:
        if not moderation.may_see(m, room):
            if room.settings.invite_only:
                raise ChatError(ErrorCode.INVITE_ONLY, f"#{room.name} is invite-only: only its members see its "
                                "topic.", command="topic", subject=room.name)
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"#{room.name} is secret: only its members see its topic; "
                            f"/join {room.name} first.", command="topic", subject=room.name)
        out.reply(m, Topic(room.name, room.topic, room.topic_by, room.topic_at, change=False))

    def topic(self, m: Member, c: cmd.Topic, out: Outbox) -> None:
        room = self.state.rooms.get(name_key(c.room)) if c.room else self._current(m)
        if c.text is None:
            if room is None:  # nobody is in it: its topic is in the database
                self._look_up(m, name_key(c.room or ""), c.room or "", out).askers.append(m)
                return
            self._tell_topic(m, room, out)
            return
        if room is None or room.key not in m.rooms:
            shown = room.name if room else c.room
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You must be in #{shown} to set its topic.", subject=shown)
        moderation.check_topic(m, room)
        now = self.clock()
        room.topic = None if c.clears else c.text
        room.topic_by, room.topic_at = m.nick, now
        out.store_room(room)
        out.writes.topics.append(TopicChange(room.id, room.topic, m.nick, now))
        if self.cluster:
            self.room_event(room, "topic", m.nick, out, {"topic": room.topic, "time": now})
        out.deliver(room.members, Topic(room.name, room.topic, m.nick, now, change=True))

    def history(self, m: Member, c: cmd.History, out: Outbox) -> None:
        if c.nick is not None:
            self.accounts.history(m, c, out)
            return
        if c.room:
            name = check_room(c.room)
            key = name_key(name)
            room = self.state.rooms.get(key)
            if room is not None:
                moderation.check_read(m, room)  # (a room not in memory is checked once read: history_read)
        else:
            room = self._current(m)
            key, name = room.key, room.name
        request = HistoryRequest(m, key, room.name if room else name, room.id if room else None, c.count,
                                 before=c.before, after=c.after, around=c.around, before_ms=c.before_ms,
                                 after_ms=c.after_ms)
        if not c.placed:  # continue from the oldest message shown
            request.before = m.cursors.get(key, self.state.next_message_id)
            request.continues = True
        out.ask(request, m)

    def history_read(self, request: HistoryRequest) -> Event:
        """What a member is told once its history page is read (on the loop thread)."""
        if request.error is not None:
            return Error(ErrorCode.HISTORY_UNAVAILABLE, HISTORY_FAILED, "history", request.room_name)
        if not request.found:
            return Error(ErrorCode.NO_SUCH_ROOM, f"There is no room #{request.room_name}.", "history",
                         request.room_name)
        if request.room is not None:  # read from the database: may this member read it?
            try:
                moderation.check_read(request.member, self.state.room_from(request.room))
            except ChatError as e:
                return Error(e.code, e.message, "history", e.subject)
        if request.continues and request.messages:  # the next /history goes on before this page
            request.member.cursors[request.room_key] = request.messages[0].id
        if request.around is not None:
            return History(request.room_name, request.messages, request.more, reason="around",
                           around=request.around, newer=request.newer)
        return History(request.room_name, request.messages, request.more, reason="page")

    def search(self, m: Member, c: cmd.Search, out: Outbox) -> None:
        # every room a member could read without joining, and the rooms it is in: not the closed ones (invite-only,
        # keyed) of others, nor those that ban it (chat.server.moderation); a server admin reads every room. A
        # logged-in member's own private conversations too (its account's, as /history @NICK pages them); a
        # guest has none, and nobody, not even an admin, finds other people's through /search
        account = m.account.id if m.account is not None else None
        if moderation.is_admin(m):
            scope = SearchScope(room_ids=None, private_account=account)
        else:
            # the database has the rooms' stored settings; a session op's (in a room nobody owns) are in memory only
            shut = frozenset(r.id for r in self.state.rooms.values() if not moderation.may_search(m, r))
            scope = SearchScope(room_ids=None, closed_except=frozenset(r.id for r in m.rooms.values()),
                                banned_key=m.key or None, private_account=account, shut=shut)
        out.ask(SearchRequest(m, parse_search(c.query), scope, cmd.SEARCH_PAGE, before=c.before), m)

    def search_read(self, request: SearchRequest) -> Event:
        """What a member is told once its search page is read (on the loop thread)."""
        if request.refusal is not None:
            e = request.refusal
            return Error(e.code, e.message, "search")
        if request.error is not None:
            return Error(ErrorCode.HISTORY_UNAVAILABLE, SEARCH_FAILED, "search")
        before = request.messages[-1].id if request.more and request.messages else None
        return SearchResults(request.query.text(), request.messages, bool(before), before, request.indexing)

    def account_read(self, read: AccountRead, out: Outbox) -> None:
        """An accounts read was answered (on the loop thread)."""
        self.accounts.answered(read, out)

    def account_done(self, job: AccountJob, out: Outbox) -> None:
        """A password was hashed or checked (on the loop thread)."""
        self.accounts.done(job, out)

    # ------------------------------------------------------------------------------------ server operators

    def kill(self, m: Member, nick: str, reason: str | None, out: Outbox) -> None:
        """A server operator disconnects `nick` (IRC's KILL): it gets a goodbye saying who and why, its rooms see it
        quit with `Killed (by (reason))`, as IRC servers say it."""
        _need_operator(m)
        target = self.state.nicks.get(name_key(nick))
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {nick} is online.", subject=nick)
        why = reason or "no reason given"
        log.info("%s killed %s: %s", m.nick, target.nick, why,
                 extra={"event": "kill", "nick": m.nick, "target": target.nick, "reason": why})
        if target is not m:
            out.reply(m, Notice(f"{target.nick} is disconnected ({why})."))
        self.end(target, f"Killed by {m.nick}: {why}", ErrorCode.KILLED, f"Killed ({m.nick} ({why}))", out)

    def wallops(self, m: Member, text: str, out: Outbox) -> None:
        """A server operator's message to everyone with user mode +w, and back to its sender. Not stored."""
        _need_operator(m)
        everyone = [x for x in self.state.nicks.values() if x.wallops and x is not m]
        out.deliver((m, *everyone), Wallops(m.nick, text, self.clock()))

    def umode(self, m: Member, modes: str | None, out: Outbox) -> None:
        """Your user modes: +w/-w (receive /wallops), -o (give up what /oper gave; +o is /oper's alone)."""
        if modes is None:
            out.reply(m, UserModes(m.nick, user_modes(m)))
            return
        applied: list[tuple[str, str]] = []
        sign = "+"
        for letter in modes:
            if letter in "+-":
                sign = letter
                continue
            before = user_modes(m)
            if letter == "w":
                m.wallops = sign == "+"
            elif letter == "o" and sign == "-":
                m.oper_account = None  # (an admin account logged in stays an operator while logged in)
            if user_modes(m) != before:
                applied.append((sign, letter))
        if applied:
            changed, last = "", ""
            for sign, letter in applied:
                changed += (sign if sign != last else "") + letter
                last = sign
            out.reply(m, UserModes(m.nick, changed, change=True))

    def quit(self, m: Member, reason: str | None, out: Outbox) -> None:
        out.reply(m, Goodbye("You left the chat. Come back soon!"))
        out.reply(m, CloseAfterFlush())
        self.disconnected(m, reason or "quit", out)

    # ------------------------------------------------------------------------------------------ helpers

    def _current(self, m: Member) -> Room:
        if m.current is None:
            raise ChatError(ErrorCode.NO_CURRENT_ROOM, "You are not in any room; /join one first.")
        return m.current

    def _speaking_room(self, m: Member, name: str) -> Room:
        """The room `/msg #ROOM` or `/me #ROOM` sends to: one of `m`'s, or, from outside, one with people in it that
        takes messages from outside (-n); moderation.check_speak says whether `m` may."""
        room_name = check_room(name)
        room = m.rooms.get(name_key(room_name)) or self.state.rooms.get(name_key(room_name))
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{room_name}; /join it first.", subject=room_name)
        return room

    def _member_room(self, m: Member, name: str) -> Room:
        room_name = check_room(name)
        room = m.rooms.get(name_key(room_name))
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{room_name}; /join it first.", subject=room_name)
        return room


def user_modes(m: Member) -> str:
    """A member's user modes, as IRC writes them: `+`, then o (a server operator) and w (receives /wallops)."""
    return "+" + ("o" if m.operator else "") + ("w" if m.wallops else "")


def _need_operator(m: Member) -> None:
    if not m.operator:
        raise ChatError(ErrorCode.NOT_OPERATOR, "Only server operators may do that: /oper ACCOUNT PASSWORD with an "
                        "admin account's name and password.")


WHO_MATCHES_MAX = 200  # people one WHO mask lists
STORAGE_UNAVAILABLE = "The server could not read that room right now. Please try again."
HISTORY_FAILED = "History is unavailable right now: the server could not read it. Please try again."
SEARCH_FAILED = "Search is unavailable right now: the server could not read the messages. Please try again."
