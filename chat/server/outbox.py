"""What the chat services produce: deliveries in order, and what must be stored before they go out.

A service never writes to a socket. It appends to the current `Outbox`; the event loop commits the outbox's
writes (one transaction for everything accepted meanwhile) and only then delivers, in order. So a message is in
the database before anyone sees it, and what each client receives keeps the order the server decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chat.protocol.events import ChatMessage, Event
from chat.server.state import Room, Session
from chat.storage.repository import WriteBatch


@dataclass(slots=True, eq=False)
class Backlog:
    """A room's recent messages for a newcomer, captured when it joined; those that failed to commit are dropped
    at delivery time, so the backlog and the live stream after it meet without a gap or a duplicate."""

    room: str
    messages: list[ChatMessage]
    more: bool


@dataclass(slots=True, eq=False)
class HistoryRequest:
    """A /history page, read by the storage thread after the writes before it. `chain` is the previous page of
    the same room for the same session, not yet read when this one was asked for: this page starts where that
    one ends."""

    session: Session
    room: Room
    limit: int
    before: int | None = None
    after: int | None = None
    chain: HistoryRequest | None = None
    messages: list[ChatMessage] = field(default_factory=list)
    more: bool = False
    error: Exception | None = None
    done: bool = False

    def resolve_start(self) -> None:
        if self.chain is not None:
            self.before = self.chain.continue_before()
            self.chain = None

    def continue_before(self) -> int | None:
        return self.messages[0].id if self.messages else self.before


@dataclass(slots=True, eq=False)
class SetFormat:
    """Switch a session's output format at its place in the delivery order."""

    json: bool


@dataclass(slots=True, eq=False)
class CloseAfterFlush:
    """Close the session once what was queued for it before this point has been sent."""


Deliverable = Event | Backlog | HistoryRequest | SetFormat | CloseAfterFlush


class Outbox:
    __slots__ = ("deliveries", "new_rooms", "queries", "senders", "writes")

    def __init__(self) -> None:
        self.deliveries: list[tuple[Sequence[Session], Deliverable]] = []
        self.writes = WriteBatch()
        self.queries: list[HistoryRequest] = []
        self.senders: dict[int, Session] = {}  # message id -> who sent it (told if the commit fails)
        self.new_rooms: dict[int, Room] = {}  # rooms whose row must be written (again) with this batch

    def deliver(self, recipients: Sequence[Session], item: Deliverable) -> None:
        if recipients:
            self.deliveries.append((recipients, item))

    def reply(self, session: Session, item: Deliverable) -> None:
        self.deliveries.append(((session,), item))

    def store_message(self, message: ChatMessage, room: Room | None, sender: Session) -> None:
        if room is not None:
            self.store_room(room)
        self.writes.messages.append((message, room.id if room else None))
        self.senders[message.id] = sender

    def store_room(self, room: Room) -> None:
        if not room.persisted:
            self.new_rooms[room.id] = room

    def ask_history(self, request: HistoryRequest) -> None:
        self.queries.append(request)
        self.reply(request.session, request)

    @property
    def needs_storage(self) -> bool:
        return bool(self.writes) or bool(self.queries) or bool(self.new_rooms)

    def __bool__(self) -> bool:
        return bool(self.deliveries) or self.needs_storage
