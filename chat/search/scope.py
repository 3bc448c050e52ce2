"""Who may read what, for a search: the server decides, the storage layer only obeys (no database library here,
so the chat services can name a scope without one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SearchScope:
    """What the searcher may read: the caller says (the server knows who may read what); a search never widens it.

    Users: `SearchScope(room_ids=<the rooms they may read>)`; once private conversations are searchable,
    `private_of=<their nick key>` adds those they sent or received. Admins: `SearchScope.everything()`."""

    room_ids: frozenset[int] | None = frozenset()  # None: every room
    private_of: str | None = None  # a nick key: the private messages this nick sent or received
    all_private: bool = False  # every private message

    @classmethod
    def everything(cls) -> SearchScope:
        return cls(room_ids=None, all_private=True)
