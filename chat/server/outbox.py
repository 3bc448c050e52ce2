"""What the chat services produce: deliveries in order, what must be stored before they go out, and reads.

A service never writes to a socket. It appends to the current `Outbox`; the event loop commits the outbox's
writes (one transaction for everything accepted meanwhile) and only then delivers, in order. So a message is in
the database before anyone sees it, and what each client receives keeps the order the server decided. Reads
(`ask`) run once the outbox is committed, and are answered when they are done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat.protocol.codec import Reply
from chat.protocol.errors import ErrorCode
from chat.protocol.events import ChatMessage, Event
from chat.server.member import Member
from chat.server.reads import StorageRead
from chat.server.state import Room
from chat.storage.records import WriteBatch

if TYPE_CHECKING:
    from chat.server.account_worker import AccountJob


@dataclass(slots=True, eq=False)
class Backlog:
    """A room's recent messages for a newcomer, captured when it joined; those that failed to commit are dropped
    at delivery time, so the backlog and the live stream after it meet without a gap or a duplicate."""

    room: str
    messages: list[ChatMessage]
    more: bool


@dataclass(slots=True, eq=False)
class SetFormat:
    """Switch a connection's output format at its place in the delivery order."""

    output: str


@dataclass(slots=True, eq=False)
class Goodbye:
    """The server ends this member's connection: a `bye` telling why and which of its messages was stored last
    (known only at delivery time), then the close once it is sent."""

    reason: str
    code: ErrorCode | None = None


@dataclass(slots=True, eq=False)
class CloseAfterFlush:
    """Close the connection once what was queued for it before this point has been sent."""


Deliverable = Event | Reply | Backlog | SetFormat | Goodbye | CloseAfterFlush


class Outbox:
    __slots__ = ("deliveries", "early_reads", "jobs", "new_rooms", "reads", "senders", "text_bytes", "writes")

    def __init__(self) -> None:
        self.deliveries: list[tuple[Sequence[Member], Deliverable]] = []
        self.writes = WriteBatch()
        self.reads: list[StorageRead] = []
        self.early_reads: list[StorageRead] = []  # reads no write of the writer's changes: they start at once
        self.jobs: list[AccountJob] = []  # for the account workers: handed over at once, not after a commit
        self.senders: dict[int, Member] = {}  # message id -> who sent it (told if the commit fails)
        self.new_rooms: dict[int, Room] = {}  # rooms whose row must be written (again) with this batch
        self.text_bytes = 0  # message text accepted into this outbox: what waiting for storage costs in memory

    def deliver(self, recipients: Sequence[Member], item: Deliverable) -> None:
        if recipients:
            self.deliveries.append((recipients, item))

    def reply(self, member: Member, item: Deliverable) -> None:
        self.deliveries.append(((member,), item))

    def store_message(self, message: ChatMessage, room: Room | None, sender: Member) -> None:
        if room is not None:
            self.store_room(room)
        self.writes.messages.append((message, room.id if room else None))
        self.senders[message.id] = sender
        self.text_bytes += len(message.text)

    def store_room(self, room: Room) -> None:
        if not room.persisted:
            self.new_rooms[room.id] = room

    def ask(self, read: StorageRead, member: Member) -> None:
        """A read for `member`: its next lines wait until the read is answered. It runs once the writes before
        it are committed, unless it reads nothing the writer writes (`early`: accounts, written by the account
        workers before they answer), and then at once."""
        reads = self.early_reads if getattr(read, "early", False) else self.reads
        if not any(r is read for r in reads):
            reads.append(read)
        member.waiting.append(read)

    def work(self, job: AccountJob, member: Member) -> None:
        """A password to hash or check for `member`: its next lines wait until the job is answered."""
        self.jobs.append(job)
        member.waiting.append(job)

    @property
    def needs_storage(self) -> bool:
        """Does it need the writer (reads only need the writes before them to be committed)?"""
        return bool(self.writes) or bool(self.new_rooms)

    def __bool__(self) -> bool:
        return bool(self.deliveries) or self.needs_storage or bool(self.reads) or bool(self.early_reads)
