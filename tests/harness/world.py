"""The chat services on their own, with no event loop and no sockets: members, lines in, outboxes out."""

from __future__ import annotations

from collections.abc import Callable

from chat.protocol.errors import ChatError
from chat.protocol.native import NativeCodec
from chat.server.config import ServerConfig
from chat.server.member import Link, Member
from chat.server.outbox import Outbox
from chat.server.reads import (
    HistoryRequest,
    InboxRead,
    NickLookup,
    PrivateHistoryRequest,
    RoomEventsRead,
    RoomLookup,
    StorageRead,
    WaitingMessages,
)
from chat.server.service import ChatService
from chat.server.state import ChatState
from chat.storage.records import FoundRoom


class World:
    """A ChatService over a ChatState, driven line by line as the event loop would drive it. Reads the services
    ask for are answered by `answer` (a room lookup finds nothing unless `rooms_in_db` has it; every nick is
    unregistered, and private history and waiting messages are empty: accounts are tested end to end, with real
    password hashing, in tests/test_accounts*.py)."""

    def __init__(self, backlog: int = 3, clock: Callable[[], float] | None = None, **config: object) -> None:
        self.state = ChatState(backlog)
        self.config = ServerConfig(port=0, db=":memory:", backlog=backlog, **config)  # type: ignore[arg-type]
        self.now = 1_700_000_000.0
        self.service = ChatService(self.state, self.config, clock or (lambda: self.now))
        self.codec = NativeCodec(self.config.max_line)
        self.out = Outbox()
        self.members: list[Member] = []
        self.rooms_in_db: dict[str, FoundRoom] = {}
        self._ids = 0

    def member(self, nick: str | None = None) -> Member:
        self._ids += 1
        m = Member(self._ids, Link(), self.config.new_rooms_burst, self.now)
        self.members.append(m)
        self.service.connected(m, Outbox())
        if nick:
            self.line(m, nick)
        return m

    def line(self, m: Member, line: str, answer_reads: bool = True) -> Outbox:
        """One line from `m`, as the loop handles it; reads it asks for are answered into the same outbox."""
        self.out = out = Outbox()
        try:
            for command in self.codec.decode(line):
                self.service.handle(m, command, out)  # type: ignore[arg-type]
        except ChatError as e:
            self.service.refused(m, e, out)
        if answer_reads:
            while out.reads or out.early_reads:
                self.answer((out.early_reads or out.reads).pop(0), out)
        return out

    def answer(self, read: StorageRead, out: Outbox) -> None:
        """Answer a read the way the storage reader and the loop would (from `rooms_in_db`)."""
        no_member = RoomLookup | RoomEventsRead | InboxRead
        for m in (read.members if isinstance(read, no_member) else [read.member]):
            if read in m.waiting:
                m.waiting.remove(read)
        if isinstance(read, RoomLookup):
            read.found = self.rooms_in_db.get(read.key)
            self.service.room_found(read, out)
        elif isinstance(read, HistoryRequest):
            read.found = read.room_key in self.rooms_in_db or read.room_key in self.state.rooms
        elif isinstance(read, NickLookup | PrivateHistoryRequest | WaitingMessages):
            if isinstance(read, PrivateHistoryRequest):
                read.found = False
            self.service.account_read(read, out)

    def problems(self) -> list[str]:
        return self.state.problems({m for m in self.members if not m.gone})
