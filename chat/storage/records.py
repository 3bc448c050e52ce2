"""The plain records the chat services hand to storage and get back from it.

No database library is imported here, so the services (chat.server.service) import and run without one:
storage is the writer's and the reader's business (chat.storage.repository).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.protocol.events import ChatMessage


@dataclass(slots=True)
class StoredRoom:
    id: int
    name: str
    topic: str | None
    topic_set_by: str | None
    topic_set_at: float | None
    created_at: float


@dataclass(slots=True)
class SeenUser:
    nick: str
    key: str
    time: float


@dataclass(slots=True)
class TopicChange:
    room_id: int
    topic: str | None
    nick: str
    time: float


@dataclass(slots=True)
class WriteBatch:
    """Everything to commit in one transaction. Rooms are inserted if missing, before the messages."""

    rooms: list[StoredRoom] = field(default_factory=list)
    users: list[SeenUser] = field(default_factory=list)
    messages: list[tuple[ChatMessage, int | None]] = field(default_factory=list)  # (message, room id)
    topics: list[TopicChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rooms or self.users or self.messages or self.topics)


@dataclass(slots=True)
class LoadedState:
    """What a starting server needs from the database: where the id counters continue. Rooms are not loaded:
    a room comes into memory when someone joins it (chat.server.reads.RoomLookup)."""

    last_message_id: int
    last_room_id: int


@dataclass(slots=True)
class FoundRoom:
    """A room read from the database for a joiner: its row and its newest messages, oldest first."""

    room: StoredRoom
    recent: list[ChatMessage]
