"""In-memory chat state: who is online, which rooms exist, who is in them.

Only the event-loop thread reads or writes this state, so it needs no lock (see docs/ARCHITECTURE.md).
A room's `members` is a tuple replaced on every join or leave (copy-on-write): a delivery keeps the tuple it
was given, and two deliveries to the same unchanged room share one tuple, which lets the sender render a run
of messages once for all of them.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import TYPE_CHECKING

from chat.protocol.events import ChatMessage, DeliveryState
from chat.protocol.framing import LineFramer
from chat.protocol.names import name_key

if TYPE_CHECKING:
    from chat.server.outbox import HistoryRequest

RING_SLACK = 16  # extra recent messages kept per room, so failed ones can be skipped without a gap
LINE_OVERHEAD = 96  # bytes a rendered history line adds to its text (room, time, nick, JSON keys), at most


def newest_fitting(messages: list[ChatMessage], budget: int) -> tuple[list[ChatMessage], bool]:
    """The newest of `messages` (oldest first) whose rendering fits in `budget` bytes, and whether any were cut.
    Keeps a backlog or history page from overflowing the receiver's send queue on its own."""
    total = 0
    for i in range(len(messages) - 1, -1, -1):
        total += len(messages[i].text) * 3 + LINE_OVERHEAD  # UTF-8 takes at most 3 bytes per str character here
        if total > budget:
            return messages[i + 1 :], True
    return messages, False


class Room:
    __slots__ = (
        "created_at", "id", "key", "members", "name", "older_in_db", "persisted", "recent", "topic", "topic_at",
        "topic_by",
    )  # fmt: skip

    def __init__(self, room_id: int, name: str, created_at: float, backlog: int) -> None:
        self.id = room_id
        self.name = name
        self.key = name_key(name)
        self.created_at = created_at
        self.topic: str | None = None
        self.topic_by: str | None = None
        self.topic_at: float | None = None
        self.members: tuple[Session, ...] = ()
        self.recent: deque[ChatMessage] = deque(maxlen=backlog + RING_SLACK if backlog else 0)
        self.older_in_db = False  # messages exist in the database before the oldest in `recent`
        self.persisted = False  # the rooms row is committed

    def add_member(self, session: Session) -> None:
        self.members = (*self.members, session)

    def remove_member(self, session: Session) -> None:
        self.members = tuple(m for m in self.members if m is not session)

    def remember(self, message: ChatMessage) -> None:
        recent = self.recent
        if recent.maxlen and len(recent) == recent.maxlen:
            self.older_in_db = True
        recent.append(message)

    def backlog(self, count: int, budget: int) -> tuple[list[ChatMessage], bool]:
        """The newest `count` messages not known to have failed (fewer if they would not fit in `budget` bytes),
        and whether older ones exist."""
        if count <= 0:
            return [], bool(self.recent) or self.older_in_db
        usable = [m for m in self.recent if m.state is not DeliveryState.FAILED]
        chosen, cut = newest_fitting(usable[-count:], budget)
        return chosen, cut or len(usable) > count or self.older_in_db


class Session:
    """One client connection: its socket and buffers (used by the event loop) and its chat state."""

    __slots__ = (
        "close_after_flush", "closing", "connected_at", "current", "cursors", "eof", "fd", "framer", "held",
        "held_bytes", "id", "ip", "json", "key", "last_refill", "nick", "out", "out_bytes", "peer", "reading",
        "registered", "rooms", "sock", "tokens", "writing",
    )  # fmt: skip

    def __init__(self, session_id: int, sock: socket.socket, peer: str, ip: str, max_line: int, burst: int,
                 now: float) -> None:
        self.id = session_id
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.ip = ip
        self.connected_at = now
        self.framer = LineFramer(max_line)
        # output: chunks waiting to be sent; the first may be a memoryview of a partly sent chunk
        self.out: list[bytes | memoryview] = []
        self.out_bytes = 0
        self.writing = False  # registered for EPOLLOUT
        self.reading = True  # registered for EPOLLIN
        self.eof = False  # the peer has finished sending
        # flood control: a token bucket; lines beyond it wait in `held`
        self.tokens = float(burst)
        self.last_refill = now
        self.held: deque[str] = deque()
        self.held_bytes = 0
        # chat state
        self.nick = ""
        self.key = ""
        self.registered = False
        self.rooms: dict[str, Room] = {}  # key -> room, in the order joined
        self.current: Room | None = None
        self.cursors: dict[str, int | HistoryRequest] = {}  # room key -> where /history continues
        self.json = False
        self.closing: str | None = None  # why the connection is ending, once it is: no more input is read
        self.close_after_flush = False  # close once the output queue is empty

    @property
    def label(self) -> str:
        return f"#{self.id} {self.nick or '-'}@{self.peer}"

    def __repr__(self) -> str:
        return f"<Session {self.label}>"


class ChatState:
    """Everything the chat services read and change."""

    def __init__(self, backlog: int) -> None:
        self.backlog = backlog
        self.nicks: dict[str, Session] = {}  # nick key -> registered session
        self.rooms: dict[str, Room] = {}  # room key -> room
        self.next_message_id = 1
        self.next_room_id = 1

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id = message_id + 1
        return message_id

    def new_room(self, name: str, now: float) -> Room:
        room = Room(self.next_room_id, name, now, self.backlog)
        self.next_room_id += 1
        self.rooms[room.key] = room
        return room

    def co_members(self, session: Session) -> tuple[Session, ...]:
        """Everyone sharing at least one room with `session`, once each, `session` excluded."""
        seen: dict[int, Session] = {}
        for room in session.rooms.values():
            for member in room.members:
                seen[member.id] = member
        seen.pop(session.id, None)
        return tuple(seen.values())
