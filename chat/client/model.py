"""Client-side state, free of I/O and UI: conversations, their scrollback, unread counts, members, paging.

A conversation is a room, a private conversation with one nick, or the server window. Its scrollback is a
list of entries: messages (with the server's message id) and everything else (joins, notices, errors...).
Messages are kept in id order and never twice: a message id seen again (a backlog after a reconnect, an
overlapping /history page) is dropped. A message older than some already shown is placed just before the
oldest newer one, so a page of older history lands above, and messages missed while disconnected land
between what was seen before and what came after. A mark may be anchored after a message id ("Rejoined" is
anchored after the newest message of the backlog): messages up to that id land above it, later ones below.

Entries from nicks the user ignores are kept, hidden (their ids still count for paging and duplicates).

Every change to a scrollback is recorded in `ClientModel.inserts`, in order, for a view to replay.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from chat.protocol.names import name_key

SERVER_KEY = "*server*"  # cannot clash with a nick or room key (neither may contain *)


def room_key(name: str) -> str:
    """Rooms and nicks share one namespace of conversation keys: a room's key starts with #."""
    return "#" + name_key(name.removeprefix("#"))


def nick_key(nick: str) -> str:
    return name_key(nick)


class Kind(StrEnum):
    SERVER = "server"
    ROOM = "room"
    PRIVATE = "private"


class EntryKind(StrEnum):
    MESSAGE = "message"
    ACTION = "action"
    PRIVATE = "private"
    JOIN = "join"
    PART = "part"
    QUIT = "quit"
    NICK = "nick"
    TOPIC = "topic"
    INFO = "info"  # answers: /who, /rooms, /help, notices
    ERROR = "error"
    STATUS = "status"  # connection state changes
    MARK = "mark"  # a separator: "you joined", "beginning of the room"


MESSAGE_KINDS = frozenset({EntryKind.MESSAGE, EntryKind.ACTION, EntryKind.PRIVATE})
IGNORABLE_KINDS = MESSAGE_KINDS | {EntryKind.JOIN, EntryKind.PART, EntryKind.QUIT, EntryKind.NICK}


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False, slots=True)
class Entry:
    kind: EntryKind
    text: str
    time: datetime = field(default_factory=now)
    nick: str | None = None
    id: int | None = None  # the server's message id, for messages
    earlier: bool = False  # history: sent before we were here
    own: bool = False  # sent by us
    mention: bool = False  # mentions our nick, or is a private message to us
    anchor: int | None = None  # marks: placed after this message id (messages up to it above, later ones below)
    hidden: bool = False  # from a nick the user ignores

    @property
    def is_message(self) -> bool:
        return self.kind in MESSAGE_KINDS


@dataclass(eq=False)
class Conversation:
    kind: Kind
    name: str  # room name without '#', or the other person's nick
    entries: list[Entry] = field(default_factory=list)
    unread: int = 0  # messages not yet seen
    mentioned: bool = False  # one of the unread messages mentions us
    members: dict[str, str] = field(default_factory=dict)  # key -> nick (rooms)
    ops: set[str] = field(default_factory=set)  # rooms: keys of the members who are ops (shown as @nick)
    voiced: set[str] = field(default_factory=set)  # rooms: keys of the members with a voice (+nick)
    topic: str | None = None
    joined: bool = False  # rooms: the server has us in the room right now
    at_beginning: bool = False  # rooms: no older messages exist on the server
    fetching: bool = False  # rooms: a page of older messages was asked for
    catchup_after: int | None = None  # rooms, after a rejoin: newer history than this was missed, not earlier
    marker: Entry | None = None  # the last entry shown when the user last looked away: new ones come after it
    _ids: list[int] = field(default_factory=list)  # message ids, sorted
    _by_id: dict[int, Entry] = field(default_factory=dict)
    _order: list[tuple[int, int, int]] = field(default_factory=list)  # sorted keys of messages and anchored marks
    _by_order: dict[tuple[int, int, int], Entry] = field(default_factory=dict)

    @property
    def key(self) -> str:
        if self.kind is Kind.SERVER:
            return SERVER_KEY
        return room_key(self.name) if self.kind is Kind.ROOM else nick_key(self.name)

    @property
    def title(self) -> str:
        return f"#{self.name}" if self.kind is Kind.ROOM else self.name

    @property
    def oldest_id(self) -> int | None:
        return self._ids[0] if self._ids else None

    @property
    def newest_id(self) -> int | None:
        return self._ids[-1] if self._ids else None

    def _order_key(self, entry: Entry) -> tuple[int, int, int] | None:
        """Messages sort by id; a mark anchored after id A sorts after message A and before message A + 1."""
        if entry.id is not None:
            return (entry.id, 0, 0)
        if entry.anchor is not None:
            return (entry.anchor, 1, len(self._order))
        return None

    def position_for(self, entry: Entry) -> int | None:
        """Where `entry` belongs in the scrollback; None when it is a message already there."""
        if entry.id is not None and entry.id in self._by_id:
            return None
        key = self._order_key(entry)
        if key is None:
            return len(self.entries)
        after = bisect.bisect_right(self._order, key)
        if after == len(self._order):
            return len(self.entries)
        return self.entries.index(self._by_order[self._order[after]])

    def insert(self, index: int, entry: Entry) -> None:
        key = self._order_key(entry)
        self.entries.insert(index, entry)
        if entry.id is not None:
            bisect.insort(self._ids, entry.id)
            self._by_id[entry.id] = entry
        if key is not None:
            bisect.insort(self._order, key)
            self._by_order[key] = entry

    def marker_index(self) -> int | None:
        """Where to draw the read marker (after this entry), when something shown came after it; else None."""
        if self.marker is None or self.marker.hidden:
            return None
        try:
            index = self.entries.index(self.marker)
        except ValueError:
            return None
        return index if any(not e.hidden for e in self.entries[index + 1:]) else None

    def member_nicks(self) -> list[str]:
        return sorted(self.members.values(), key=str.lower)

    def shown_member(self, nick: str) -> str:
        """The nick as the members list shows it: @ for ops, + for voiced members (as IRC clients do)."""
        key = nick_key(nick)
        return f"@{nick}" if key in self.ops else f"+{nick}" if key in self.voiced else nick

    def set_members(self, nicks: list[str], ops: list[str] | None = None, voiced: list[str] | None = None) -> None:
        self.members = {nick_key(n): n for n in nicks}
        if ops is not None:
            self.ops = {nick_key(n) for n in ops}
        if voiced is not None:
            self.voiced = {nick_key(n) for n in voiced}

    def add_member(self, nick: str) -> None:
        self.members[nick_key(nick)] = nick

    def remove_member(self, nick: str) -> bool:
        self.ops.discard(nick_key(nick))
        self.voiced.discard(nick_key(nick))
        return self.members.pop(nick_key(nick), None) is not None

    def has_member(self, nick: str) -> bool:
        return nick_key(nick) in self.members


@dataclass(frozen=True, slots=True)
class Insert:
    """`entry` was inserted at `index` of conversation `key`'s scrollback."""

    key: str
    index: int
    entry: Entry


class ClientModel:
    """All conversations, which one is shown, and who we are."""

    def __init__(self, server_label: str) -> None:
        self.conversations: dict[str, Conversation] = {}  # in display order: server, then as opened
        self.server = self._open(Kind.SERVER, server_label)
        self.current_key = SERVER_KEY
        self.nick: str | None = None
        self.known_rooms: dict[str, str] = {}  # room key -> name: every room heard of, for completion
        self.inserts: list[Insert] = []
        self.redraw: set[str] = set()  # conversation keys whose entries changed in place (hidden or shown)

    # ---------------------------------------------------------------------------------- conversations

    @property
    def current(self) -> Conversation:
        return self.conversations.get(self.current_key, self.server)

    def get(self, key: str) -> Conversation | None:
        return self.conversations.get(key)

    def room(self, name: str) -> Conversation:
        """The room's conversation, opened if new."""
        self.known_rooms[room_key(name)] = name
        return self.conversations.get(room_key(name)) or self._open(Kind.ROOM, name)

    def private(self, nick: str) -> Conversation:
        """The private conversation with `nick`, opened if new."""
        return self.conversations.get(nick_key(nick)) or self._open(Kind.PRIVATE, nick)

    def rooms(self) -> list[Conversation]:
        return [c for c in self.conversations.values() if c.kind is Kind.ROOM]

    def privates(self) -> list[Conversation]:
        return [c for c in self.conversations.values() if c.kind is Kind.PRIVATE]

    def _open(self, kind: Kind, name: str) -> Conversation:
        conversation = Conversation(kind, name)
        self.conversations[conversation.key] = conversation
        return conversation

    def close(self, key: str) -> None:
        """Forget a conversation (not the server window); show a neighbour if it was shown."""
        if key == SERVER_KEY or key not in self.conversations:
            return
        keys = list(self.conversations)
        index = keys.index(key)
        del self.conversations[key]
        self.inserts = [i for i in self.inserts if i.key != key]
        if self.current_key == key:
            remaining = list(self.conversations)
            self.select(remaining[min(index, len(remaining) - 1)])

    def rename_private(self, old: str, new: str) -> None:
        """Someone we talk to privately changed nick: the conversation follows them."""
        conversation = self.conversations.get(nick_key(old))
        if conversation is None or conversation.kind is not Kind.PRIVATE or nick_key(new) in self.conversations:
            if conversation is not None and conversation.kind is Kind.PRIVATE:
                conversation.name = new  # only the case changed
            return
        old_key = conversation.key
        conversation.name = new
        self.conversations = {
            (conversation.key if k == old_key else k): v for k, v in self.conversations.items()
        }
        self.inserts = [Insert(conversation.key, i.index, i.entry) if i.key == old_key else i for i in self.inserts]
        if self.current_key == old_key:
            self.current_key = conversation.key

    def select(self, key: str) -> None:
        if key in self.conversations:
            if key != self.current_key:
                self.looked_away()
            self.current_key = key
            conversation = self.conversations[key]
            conversation.unread = 0
            conversation.mentioned = False

    def looked_away(self) -> None:
        """The user stops looking at the conversation shown (another is shown, or the terminal lost focus):
        what comes next there is new since they looked."""
        shown = [e for e in self.current.entries if not e.hidden]
        self.current.marker = shown[-1] if shown else None

    def cycle(self, step: int) -> None:
        """Show the next (step 1) or previous (step -1) conversation, wrapping around."""
        keys = list(self.conversations)
        index = keys.index(self.current_key) if self.current_key in keys else 0
        self.select(keys[(index + step) % len(keys)])

    # ---------------------------------------------------------------------------------------- entries

    def add(self, conversation: Conversation, entry: Entry) -> bool:
        """Add an entry to a conversation's scrollback. False (and nothing changes) for a known message."""
        index = conversation.position_for(entry)
        if index is None:
            return False
        conversation.insert(index, entry)
        self.inserts.append(Insert(conversation.key, index, entry))
        if (entry.is_message and not entry.earlier and not entry.own and not entry.hidden
                and conversation.key != self.current_key):
            conversation.unread += 1
            conversation.mentioned = conversation.mentioned or entry.mention
        return True

    def add_at_top(self, conversation: Conversation, entry: Entry) -> None:
        conversation.insert(0, entry)
        self.inserts.append(Insert(conversation.key, 0, entry))

    def take_inserts(self) -> list[Insert]:
        inserts, self.inserts = self.inserts, []
        return inserts

    def hide(self, hidden: Callable[[Entry], bool]) -> None:
        """Hide the messages and comings and goings for which `hidden` is true; show the others again."""
        for conversation in self.conversations.values():
            for entry in conversation.entries:
                if entry.kind in IGNORABLE_KINDS and entry.hidden != hidden(entry):
                    entry.hidden = not entry.hidden
                    self.redraw.add(conversation.key)

    # -------------------------------------------------------------------------------------------- names

    def known_nicks(self) -> list[str]:
        """Nicks for completion: the current room's members first, then everyone else we know of."""
        seen: dict[str, str] = {}
        current = self.current
        for nick in current.member_nicks():
            seen.setdefault(nick_key(nick), nick)
        for conversation in self.conversations.values():
            if conversation.kind is Kind.PRIVATE:
                seen.setdefault(conversation.key, conversation.name)
            for nick in conversation.member_nicks():
                seen.setdefault(nick_key(nick), nick)
        return list(seen.values())

    def room_names(self) -> list[str]:
        joined = [c.name for c in self.rooms()]
        others = sorted((n for k, n in self.known_rooms.items() if k not in self.conversations), key=str.lower)
        return joined + others
