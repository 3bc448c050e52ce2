"""A clustered node's side of the loop (docs/CLUSTER.md): hearing other nodes, and applying their room events.

The listener thread (`ClusterLink`) holds a psycopg connection of its own that LISTENs on the `chat` channel,
beats the node's heartbeat every HEARTBEAT seconds on it and reaps nodes that stopped beating. It touches no chat
state: like the storage threads it hands what it heard to the loop through a deque and the loop's wake pipe.

On the loop (`Cluster`), each room in memory keeps `applied`, the number of the last room event its local members
were given. A notification "room:seq" beyond it starts a read of the room's events after `applied`
(chat.server.reads.RoomEventsRead); the answer is applied in order, contiguously, and delivered at once. The
node's own events are delivered by their own outbox after their commit, as on a single server, so an own event
met in a read stops the read's application there: the commit that wrote it has not come back to the loop yet,
and its outbox delivers it (then whatever came after is read again). A (re)connected listener, and the node's
start, make every room be read again from its `applied`, so a missed notification never loses an event.
"""

from __future__ import annotations

import logging
import threading
import time
import typing
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from chat.protocol.events import ChatMessage, Invite, Join, Kick, Mode, ModeChange, NickChange, Part, Quit, Topic
from chat.protocol.names import name_key
from chat.server.moderation import Moderation
from chat.server.outbox import Outbox
from chat.server.reads import InboxRead, RoomEventsRead
from chat.server.state import LISTED
from chat.storage.cluster import FETCH_LIMIT, LISTEN, ClusterCommit, heartbeat, prune, reap_dead
from chat.storage.records import EventRow, Role, StoredRole

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from chat.server.member import Member
    from chat.server.service import ChatService
    from chat.server.state import Room

log = logging.getLogger("chat.cluster")

HEARTBEAT = 2.0  # seconds between two heartbeats (and reaping rounds) of a node
PRUNE_EVERY = 60.0  # seconds between two prunings of old room events by a node (at most; see ClusterLink)
INBOX = -1  # in `Cluster.behind_since`: the node's inbox of private messages (room ids are positive)
RESYNC = (-1, -1)  # in the inbox: the listener (re)connected; read every room again from its `applied`
ORIGINS_KEPT = 4096  # quits and nick changes remembered, so one seen in several rooms is told once


class ClusterLink:
    """The listener, heartbeat and reaper thread."""

    def __init__(self, engine: Engine, node: str, node_timeout: float, notify: Callable[[], None],
                 events_kept: float = 300.0) -> None:
        self.engine = engine
        self.node = node
        self.node_timeout = node_timeout
        self.notify = notify
        self.events_kept = events_kept  # seconds room events are kept at least (then pruned: see `prune`)
        self.inbox: deque[tuple[int, int]] = deque()
        self.private: deque[int] = deque()  # numbers notified in this node's inbox of private messages
        # set by the loop: the time before which it applied everything (None: all it heard, so far)
        self.caught_up: float | None = None
        self._untaken_since = 0.0  # when the oldest notification the loop has not taken yet was heard
        # the heartbeat found this node's row gone (the others reaped it); the loop clears it once it started
        # clean (chat.server.loop: `_node_lost`)
        self.lost = False
        self.resync_soon = False  # set by the loop after a failed read: read everything again at the next beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chat-cluster", daemon=True)
        url = engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        import psycopg

        next_beat = 0.0
        self._next_prune = time.monotonic() + min(PRUNE_EVERY, self.events_kept)
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5,
                                     application_name=f"chat-listen {self.node}"[:63]) as conn:
                    conn.execute(LISTEN)
                    log.info("cluster: listening", extra={"event": "cluster_listening"})
                    self.inbox.append(RESYNC)  # whatever was said while not listening is read from the rooms
                    self.notify()
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.25):
                            self._heard(n.payload)
                        if time.monotonic() >= next_beat:
                            next_beat = time.monotonic() + HEARTBEAT
                            self._beat()
            except Exception as e:  # the database went away, or killed this connection: listen again
                log.warning("cluster: lost the database connection (%s); reconnecting", " ".join(str(e).split()),
                            extra={"event": "cluster_listen_lost"})
                self._stop.wait(0.5)

    def _heard(self, payload: str) -> None:
        if not self.inbox and not self.private:
            self._untaken_since = time.time()
        if payload.startswith("pm:"):  # "pm:node:seq": private messages in that node's inbox, up to seq
            node, _, seq = payload[3:].rpartition(":")
            if node == self.node:
                self.private.append(int(seq))
                self.notify()
            return
        room, _, seq = payload.partition(":")
        self.inbox.append((int(room), int(seq)))
        self.notify()

    def _beat(self) -> None:
        if self.resync_soon:
            self.resync_soon = False
            self.inbox.append(RESYNC)
            self.notify()
        try:
            if not self.lost:  # (while lost, the loop is starting clean: its writer makes the row again)
                mark = self.caught_up
                if mark is None:
                    mark = time.time()
                if self.inbox or self.private:  # heard, not taken by the loop yet (it may be busy)
                    mark = min(mark, self._untaken_since)
                if not heartbeat(self.engine, self.node, mark):
                    log.error("cluster: the other nodes reaped this one (it was out of touch for longer than "
                              "--node-timeout): ending its sessions, starting clean", extra={"event": "node_lost"})
                    self.lost = True
                    self.notify()
            reap_dead(self.engine, self.node, self.node_timeout)
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + min(PRUNE_EVERY, self.events_kept)
                pruned = prune(self.engine, self.events_kept)
                if pruned:
                    log.info("cluster: pruned %d room events and inbox entries", pruned,
                             extra={"event": "cluster_pruned", "rows": pruned})
        except Exception as e:
            log.warning("cluster: heartbeat failed: %s", " ".join(str(e).split()), extra={"event": "heartbeat_failed"})


class Cluster:
    """The loop's side: which rooms to read, and applying what was read. Loop thread only."""

    def __init__(self, service: ChatService, node: str) -> None:
        self.service = service
        self.state = service.state
        self.node = node
        self.link: ClusterLink | None = None
        self.fetching: set[int] = set()  # room ids with a read in flight
        self.heard: dict[int, int] = {}  # room id -> the highest number notified
        # the inbox of private messages other nodes stored for nicks held here: the last number delivered, the
        # highest notified, and whether a read is in flight
        self.inbox_applied = 0
        self.inbox_heard = 0
        self.inbox_fetching = False
        # room id (or INBOX) -> since when (wall clock) it has been behind: the caught-up mark the heartbeat
        # writes, which pruning waits for
        self.behind_since: dict[int, float] = {}
        self.rejoining = False  # reaped: its sessions ended, its writer makes its row again (chat.server.loop)
        self._told: OrderedDict[str, set[int]] = OrderedDict()  # quit/nick origin -> local member ids told

    def rooms_by_id(self) -> dict[int, Room]:
        return {room.id: room for room in self.state.rooms.values()}

    def take_inbox(self, ask: Callable[[RoomEventsRead | InboxRead], None]) -> None:
        """Notifications heard: read the rooms in memory that are behind (all of them after a reconnect), and the
        inbox of private messages for nicks held here."""
        assert self.link is not None
        private = self.link.private
        while private:
            self.inbox_heard = max(self.inbox_heard, private.popleft())
        if self.inbox_heard > self.inbox_applied:
            self._read_inbox(ask)
        inbox = self.link.inbox
        rooms = self.rooms_by_id()
        while inbox:
            room_id, seq = inbox.popleft()
            if (room_id, seq) == RESYNC:
                for each in rooms.values():
                    self._read(each, ask)
                self._read_inbox(ask)
                for gone in [r for r in self.behind_since if r != INBOX and r not in rooms]:
                    self._caught_up(gone)  # left memory after a failed read: nothing here is behind in it
                continue
            room = rooms.get(room_id)
            if room is None:
                continue  # nobody here is in it: nothing to deliver (a joiner reads it from the database)
            if seq > self.heard.get(room_id, 0):
                self.heard[room_id] = seq
            if seq > room.applied:
                self._read(room, ask)

    def _read(self, room: Room, ask: Callable[[RoomEventsRead], None]) -> None:
        if room.id not in self.fetching:
            self.fetching.add(room.id)
            self._behind(room.id)
            ask(RoomEventsRead(room.id, room.applied))

    def _read_inbox(self, ask: Callable[[InboxRead], None]) -> None:
        if not self.inbox_fetching:
            self.inbox_fetching = True
            self._behind(INBOX)
            ask(InboxRead(self.inbox_applied))

    def _behind(self, what: int) -> None:
        if what not in self.behind_since:
            self.behind_since[what] = time.time()
            self._mark()

    def _caught_up(self, what: int) -> None:
        if self.behind_since.pop(what, None) is not None:
            self._mark()

    def _mark(self) -> None:
        assert self.link is not None
        self.link.caught_up = min(self.behind_since.values()) if self.behind_since else None

    def start_clean(self) -> None:
        """This node was reaped, and starts clean: its rooms have left memory, its inbox is a new one."""
        self.rejoining = True
        self.fetching.clear()
        self.heard.clear()
        self.inbox_applied = self.inbox_heard = 0
        self.behind_since.clear()
        if self.link is not None:
            self.link.private.clear()
            self.link.caught_up = None

    def rejoined(self) -> None:
        """The writer made this node's row again (what it had left announced gone): its heartbeat goes on."""
        self.rejoining = False
        if self.link is not None:
            self.link.lost = False

    def committed(self, commit: ClusterCommit, outbox: Outbox, ask: Callable[[RoomEventsRead], None]) -> Outbox:
        """An own commit came back: rooms get their real ids, other nodes' events before this batch's go first
        (the outbox returned holds them), then the batch's own are applied."""
        if commit.room_ids:
            for room in outbox.new_rooms.values():
                real = commit.room_ids.get(room.id)
                if real is not None:
                    room.id = real
        rooms = self.rooms_by_id()
        first = Outbox()
        for e in commit.gaps:
            gap_room = rooms.get(e.room_id)
            if gap_room is not None and e.seq > gap_room.applied and e.node != self.node:
                self._apply(gap_room, e, first)
                gap_room.applied = e.seq
        for room_id, last in commit.seqs.items():
            own = rooms.get(room_id)
            if own is None:
                continue
            own.applied = max(own.applied, last)
            if self.heard.get(room_id, 0) > own.applied:
                self._read(own, ask)
            elif room_id not in self.fetching:
                self._caught_up(room_id)
        return first

    def fetched(self, read: RoomEventsRead, ask: Callable[[RoomEventsRead], None]) -> Outbox:
        """A read of a room's events came back: apply them in order, up to an own event not delivered yet."""
        self.fetching.discard(read.room_id)
        out = Outbox()
        room = self.rooms_by_id().get(read.room_id)
        if room is None or read.error is not None:
            if read.error is not None:  # read again at the next heartbeat (still behind meanwhile)
                log.warning("cluster: reading room %d's events failed: %s", read.room_id, read.error)
                assert self.link is not None
                self.link.resync_soon = True
            else:
                self._caught_up(read.room_id)  # not in memory any more: nothing here is behind in it
            return out
        stopped = False
        for e in read.events:
            if e.seq <= room.applied:
                continue
            if e.seq != room.applied + 1 or e.node == self.node:
                stopped = True  # an own commit not back yet (its outbox delivers it): read on after it
                break
            self._apply(room, e, out)
            room.applied = e.seq
        if not stopped and (len(read.events) >= FETCH_LIMIT or self.heard.get(room.id, 0) > room.applied):
            self._read(room, ask)
        elif not stopped:
            self._caught_up(room.id)
        return out

    def inbox_fetched(self, read: InboxRead, ask: Callable[[InboxRead], None]) -> Outbox:
        """Private messages other nodes stored for nicks held here, in order: each to its holder, if still here."""
        self.inbox_fetching = False
        out = Outbox()
        if read.error is not None:  # read again at the next heartbeat (still behind meanwhile)
            log.warning("cluster: reading this node's inbox failed: %s", read.error)
            assert self.link is not None
            self.link.resync_soon = True
            return out
        for seq, message in read.entries:
            if seq <= self.inbox_applied:
                continue
            self.inbox_applied = seq
            target = self.state.nicks.get(name_key(message.to or ""))
            if target is not None:
                out.deliver((target,), message)
        if len(read.entries) >= FETCH_LIMIT or (read.entries and self.inbox_heard > self.inbox_applied):
            self._read_inbox(ask)
        else:
            self._caught_up(INBOX)
        return out

    def _apply(self, room: Room, e: EventRow, out: Outbox) -> None:
        """Another node's event, delivered to this node's members of the room."""
        members = room.members
        data = e.data
        at = float(data.get("time", e.time))  # type: ignore[arg-type]
        match e.kind:
            case "message":
                if e.message is not None:
                    message: ChatMessage = e.message
                    room.remember(message)
                    out.deliver(members, message)
            case "join":
                room.remote[name_key(e.nick)] = e.nick
                out.deliver(members, Join(room.name, e.nick, at))
            case "part":
                room.remote.pop(name_key(e.nick), None)
                out.deliver(members, Part(room.name, e.nick, _text(data.get("reason")), at))
            case "topic":
                room.topic = _text(data.get("topic"))
                room.topic_by, room.topic_at = e.nick, at
                out.deliver(members, Topic(room.name, room.topic, e.nick, at, change=True))
            case "nick":
                new = str(data.get("new", e.nick))
                room.remote.pop(name_key(e.nick), None)
                room.remote[name_key(new)] = new
                out.deliver(self._not_told(str(data.get("origin", "")), members), NickChange(e.nick, new, at))
            case "quit":
                room.remote.pop(name_key(e.nick), None)
                out.deliver(self._not_told(str(data.get("origin", "")), members),
                            Quit(e.nick, _text(data.get("reason")), at))
            case "mode":
                change = typing.cast(ModeChange, str(data.get("change", "")))
                target_nick = _text(data.get("target"))
                if change[1:] in SETTINGS:
                    self._set_setting(room, change, data)
                elif data.get("session") and target_nick is not None:
                    self._set_session(room, change, target_nick)
                out.deliver(members, Mode(room.name, e.nick, change, target_nick, at))
            case "role":
                self._set_role(room, e.nick, data, at)
                if data.get("role") == "invite" and data.get("granted"):  # one of ours invited: it is told
                    invited = self.state.nicks.get(str(data.get("key", "")))
                    if invited is not None and room.key not in invited.rooms:
                        out.deliver((invited,), Invite(room.name, str(data.get("by", "")), invited.nick))
            case "kick":
                key = name_key(e.nick)
                out.deliver(members, Kick(room.name, e.nick, str(data.get("by", "")), _text(data.get("reason")), at))
                target = self.state.nicks.get(key)
                if target is not None and target.rooms.get(room.key) is room:  # one of ours: out it goes
                    self.service.remove_from_room(target, room, out, told_others=True)
                else:
                    room.remote.pop(key, None)

    def _set_setting(self, room: Room, change: ModeChange, data: dict[str, object]) -> None:
        """Another node changed one of the room's modes: so does this node's copy (as chat.server.moderation's
        `mode` does, a session op's change kept apart from the stored settings)."""
        on, letter, word = change[0] == "+", change[1], _text(data.get("word"))
        lasting = bool(data.get("lasting", True))
        if not lasting and room.kept_settings is None:
            room.kept_settings = replace(room.settings)
        Moderation.set_mode(room.settings, letter, on, word)
        if lasting and room.kept_settings is not None:
            Moderation.set_mode(room.kept_settings, letter, on, word)
        self.state.mark_hidden(room)

    def _set_session(self, room: Room, change: ModeChange, nick: str) -> None:
        """Another node's op gave (or took) a session op or voice to one of this node's members of the room."""
        target = self.state.nicks.get(name_key(nick))
        if target is None or target.rooms.get(room.key) is not room:
            return
        session = room.session_ops if change[1] == "o" else room.session_voiced
        if change[0] == "+":
            session.add(target)
        else:
            session.discard(target)

    @staticmethod
    def _set_role(room: Room, nick: str, data: dict[str, object], at: float) -> None:
        """Another node gave or took an op, a voice, a ban or an invite in the room: so does this node's copy."""
        role = typing.cast(Role, str(data.get("role")))
        key, account = str(data.get("key", name_key(nick))), data.get("account")
        account_id = account if isinstance(account, int) else None
        if data.get("granted"):
            if role in LISTED or account_id is not None:
                room.add_role(StoredRole(role, nick, key, account_id, str(data.get("by", "")), at))
        elif role == "op":
            room.ops.pop(account_id, None)  # type: ignore[arg-type]
        elif role == "voice":
            room.voiced.pop(account_id, None)  # type: ignore[arg-type]
        else:
            room.drop_entry(role, key)

    def _not_told(self, origin: str, members: tuple[Member, ...]) -> tuple[Member, ...]:
        """A quit or nick change reaches every room its member was in: each local member hears it once."""
        if not origin:
            return members
        told = self._told.get(origin)
        if told is None:
            told = self._told[origin] = set()
            if len(self._told) > ORIGINS_KEPT:
                self._told.popitem(last=False)
        fresh = tuple(m for m in members if m.id not in told)
        told.update(m.id for m in fresh)
        return fresh


SETTINGS = ("i", "k", "l", "m", "n", "s", "t")  # the mode letters that are the room's settings (not roles)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
