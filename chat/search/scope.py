"""Who may read what, for a search: the server decides, the storage layer only obeys (no database library here,
so the chat services can name a scope without one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SearchScope:
    """What the searcher may read: the caller says (the server knows who may read what); a search never widens it.

    Users: `SearchScope(room_ids=<the rooms they may read>)`; a logged-in user's `private_account=<account id>`
    adds the private conversations of that account (messages between two accounts, as /history @NICK pages them:
    never a nick's, since a nick can change hands; messages with a guest are in no conversation, as in
    chat.server.accounts). Admins: `SearchScope.everything()`.

    Rooms can be closed to outsiders (invite-only, or a key to join: chat.server.moderation), and a nick banned
    from a room may not read it: `closed_except` leaves every closed room out but those (the searcher's own
    rooms), `banned_key` leaves out the rooms that ban that nick key. Both are checked in the database at query
    time, so rooms nobody is in (not in the server's memory) are covered too. `shut` names rooms to leave out
    whatever the database says: those a session op closed, whose settings and bans are in memory only."""

    room_ids: frozenset[int] | None = frozenset()  # None: every room
    private_account: int | None = None  # an account id: the conversations it took part in
    all_private: bool = False  # every private message
    closed_except: frozenset[int] | None = None  # leave out closed rooms but these (None: closed rooms are fine)
    banned_key: str | None = None  # leave out the rooms that ban this nick key
    shut: frozenset[int] = frozenset()  # leave out these rooms too

    @classmethod
    def everything(cls) -> SearchScope:
        return cls(room_ids=None, all_private=True)
