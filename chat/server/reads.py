"""Reads of the database the services ask for: a /history page, a room that is not in memory, a /search page.

A read placed in outbox N runs on the storage reader thread once N is committed, so it sees every write
accepted before it. Its member's next lines wait until it is answered (one read in flight per member), and the
loop answers it on its own thread. A read whose members are all gone is skipped, not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.protocol.errors import ChatError
from chat.protocol.events import ChatMessage
from chat.search.query import SearchQuery
from chat.search.scope import SearchScope
from chat.server.member import Member
from chat.storage.records import FoundRoom


@dataclass(slots=True, eq=False)
class HistoryRequest:
    """A page of a room's messages: the newest `limit` before `before`, or the oldest `limit` after `after`.
    `room_id` is None for a room that is not in memory: the reader finds it by `room_key`."""

    member: Member
    room_key: str
    room_name: str
    room_id: int | None
    limit: int
    before: int | None = None
    after: int | None = None
    continues: bool = False  # a plain /history: the member's cursor moves to the start of this page
    # the answer
    messages: list[ChatMessage] = field(default_factory=list)
    more: bool = False
    found: bool = True
    error: Exception | None = None

    @property
    def cancelled(self) -> bool:
        return self.member.gone


@dataclass(slots=True, eq=False)
class RoomLookup:
    """A room that is not in memory, read for the members waiting on it: those joining it (`joiners`) and those
    asking its topic (`askers`). One lookup per room at a time: later askers wait on the same one."""

    key: str
    name: str
    recent: int  # newest messages to read with it (a joiner's backlog)
    joiners: list[Member] = field(default_factory=list)
    askers: list[Member] = field(default_factory=list)
    # the answer
    found: FoundRoom | None = None
    error: Exception | None = None

    @property
    def members(self) -> list[Member]:
        return [*self.joiners, *self.askers]

    @property
    def cancelled(self) -> bool:
        return all(m.gone for m in self.members)


@dataclass(slots=True, eq=False)
class SearchRequest:
    """A page of /search, within what the member may read (`scope`)."""

    member: Member
    query: SearchQuery
    scope: SearchScope
    limit: int
    before: int | None = None
    # the answer
    messages: list[ChatMessage] = field(default_factory=list)
    more: bool = False
    indexing: bool = False
    refusal: ChatError | None = None  # the search ran past its time budget
    error: Exception | None = None

    @property
    def cancelled(self) -> bool:
        return self.member.gone


StorageRead = HistoryRequest | RoomLookup | SearchRequest
