"""In-memory chat state: who is online, which rooms have people in them, who is in them.

Only the event-loop thread reads or writes this state, so it needs no lock (see docs/ARCHITECTURE.md).
A room's `members` is a tuple replaced on every join or leave (copy-on-write): a delivery keeps the tuple it
was given, and two deliveries to the same unchanged room share one tuple, which lets the deliverer render a run
of messages once for all of them.

A room is in memory while someone is in it. The last one out drops it (its row and history stay in the
database, if it had any), so rooms people stopped using cost nothing; the next joiner reads it back
(chat.server.reads.RoomLookup).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING

from chat.protocol.events import ChatMessage, DeliveryState, Person
from chat.protocol.masks import is_mask, matches
from chat.protocol.names import ROOMS_PAGE, name_key
from chat.storage.records import FoundRoom, RoomSettings, StoredRole, StoredRoom

if TYPE_CHECKING:
    from chat.server.member import Member
    from chat.server.reads import RoomLookup

RING_SLACK = 16  # extra recent messages kept per room, so failed ones can be skipped without a gap
LINE_OVERHEAD = 96  # bytes a rendered history line adds to its text (room, time, nick, JSON keys), at most
DEPARTED_KEPT = 2000  # nicks /whowas remembers
ROOM_LIST_FRESH = 1000  # up to this many rooms, /rooms is computed afresh; beyond, at most once a second


def newest_fitting(messages: list[ChatMessage], budget: int) -> tuple[list[ChatMessage], bool]:
    """The newest of `messages` (oldest first) whose rendering fits in `budget` bytes, and whether any were cut.
    Keeps a backlog or history page from overflowing the receiver's send queue on its own."""
    total = 0
    for i in range(len(messages) - 1, -1, -1):
        total += len(messages[i].text) * 4 + LINE_OVERHEAD  # UTF-8 takes at most 4 bytes per character
        if total > budget:
            return messages[i + 1 :], True
    return messages, False


def fitting_around(older: list[ChatMessage], newer: list[ChatMessage], budget: int
                   ) -> tuple[list[ChatMessage], bool, bool]:
    """`older` (oldest first, the message looked for last) cut as newest_fitting cuts it, then as many of
    `newer` as still fit; and whether any older, and any newer, were cut."""
    kept, older_cut = newest_fitting(older, budget)
    total = sum(len(m.text) * 4 + LINE_OVERHEAD for m in kept)
    for i, m in enumerate(newer):
        total += len(m.text) * 4 + LINE_OVERHEAD
        if total > budget:
            return kept + newer[:i], older_cut, True
    return kept + newer, older_cut, False


MASKED_KEPT = 4096  # answers Room.matched remembers per room, at most
LISTED = ("ban", "invite", "invex", "except")  # the roles kept by nick key or mask, for guests too (others: accounts)


class Room:
    __slots__ = (
        "applied", "bans", "created_at", "excepts", "id", "invexes", "invites", "kept_settings", "key", "masked",
        "masks", "members", "name", "nicks", "older_in_db", "ops", "persisted", "recent", "remote", "session_ops",
        "session_voiced", "settings", "topic",
        "topic_at", "topic_by", "voiced",
    )  # fmt: skip

    def __init__(self, room_id: int, name: str, created_at: float, backlog: int) -> None:
        self.id = room_id
        self.name = name
        self.key = name_key(name)
        self.created_at = created_at
        self.topic: str | None = None
        self.topic_by: str | None = None
        self.topic_at: float | None = None
        self.members: tuple[Member, ...] = ()
        # the members' nicks, in the same order: a joiner's list of a room of thousands is one copy, not a walk
        self.nicks: list[str] = []
        self.recent: deque[ChatMessage] = deque(maxlen=backlog + RING_SLACK if backlog else 0)
        self.older_in_db = False  # messages exist in the database before the oldest in `recent`
        self.persisted = False  # the rooms row is committed
        # moderation (chat.server.moderation): the owner and modes, and who is what, by account id or nick key
        self.settings = RoomSettings()
        self.ops: dict[int, str] = {}  # account id -> nick
        self.voiced: dict[int, str] = {}  # account id -> nick
        self.bans: dict[str, StoredRole] = {}  # nick key -> ban (of an account, or of a guest's nick)
        self.invites: dict[str, StoredRole] = {}  # nick key -> invite (lasting for an account, once for a guest)
        self.invexes: dict[str, StoredRole] = {}  # nick key -> invite exception (+I): comes into +i uninvited
        self.excepts: dict[str, StoredRole] = {}  # nick key -> ban exception (+e): a ban does not hold it
        # the masks (chat.protocol.masks) of the lists that take them (ban, except, invex): role -> mask -> entry
        self.masks: dict[str, dict[str, StoredRole]] = {}
        # (role, nick!user@host) -> whether one of the role's masks matches it: a member's every line in a room
        # with mask bans asks, and the answer holds until the role's masks change (drop_entry, put_entry)
        self.masked: dict[tuple[str, str], bool] = {}
        # for this session only (while someone is in the room; never stored): ops and voices of members as
        # such (the first joiner of a room without an owner, guests given +o or +v), and, when a session op
        # changed the modes of a room without an owner, the modes it has in the database meanwhile
        self.session_ops: set[Member] = set()
        self.session_voiced: set[Member] = set()
        self.kept_settings: RoomSettings | None = None
        # clustered nodes (chat.server.cluster): the last room event given to the members here, and the members
        # other nodes hold (nick key -> nick); a single server leaves them 0 and empty
        self.applied = 0
        self.remote: dict[str, str] = {}

    def stored(self) -> StoredRoom:
        """The room's row, for the writer (a copy: the loop goes on changing the room)."""
        return StoredRoom(self.id, self.name, self.topic, self.topic_by, self.topic_at, self.created_at,
                          replace(self.kept_settings or self.settings))

    def add_role(self, role: StoredRole) -> None:
        if role.role == "op" and role.account_id is not None:
            self.ops[role.account_id] = role.nick
        elif role.role == "voice" and role.account_id is not None:
            self.voiced[role.account_id] = role.nick
        elif role.role in LISTED:
            self.put_entry(role)

    def put_entry(self, entry: StoredRole) -> None:
        """An entry on a list (ban, invite, invex, except), by nick key or mask."""
        self.role_list(entry.role, entry.nick_key)[entry.nick_key] = entry
        if is_mask(entry.nick_key):
            self.masked.clear()

    def drop_entry(self, role: str, key: str) -> StoredRole | None:
        entry = self.role_list(role, key).pop(key, None)
        if is_mask(key):
            self.masked.clear()
        return entry

    def matched(self, role: str, subject: str) -> bool:
        """Does one of the role's masks match `subject` (a member's `mask_subject`)? Remembered (a bounded
        number of answers) until the masks change."""
        masks = self.masks.get(role)
        if not masks:
            return False
        found = self.masked.get((role, subject))
        if found is None:
            if len(self.masked) >= MASKED_KEPT:
                self.masked.clear()
            found = self.masked[(role, subject)] = any(matches(key, subject) for key in masks)
        return found

    def role_list(self, role: str, key: str) -> dict[str, StoredRole]:
        """The list an entry of a listed role (ban, invite, invex, except) with this key belongs in: the role's
        masks, or its nicks (the role's own dict, by nick key)."""
        if is_mask(key):
            return self.masks.setdefault(role, {})
        return (self.bans if role == "ban" else self.invites if role == "invite" else self.invexes
                if role == "invex" else self.excepts)

    def add_member(self, member: Member) -> None:
        self.members = (*self.members, member)
        self.nicks.append(member.nick)

    def size(self) -> int:
        """How many are in it, here and on other nodes (as `everyone()` counts them, without its list)."""
        return len(self.everyone()) if self.remote else len(self.members)

    def everyone(self) -> list[str]:
        """Who is in it: the members here, then those of other nodes (clustered)."""
        if not self.remote:
            return self.nicks.copy()
        here = {x.key for x in self.members}
        return [*self.nicks, *(n for k, n in self.remote.items() if k not in here)]

    def remove_member(self, member: Member) -> None:
        members = self.members
        try:
            i = members.index(member)  # members compare by identity
        except ValueError:
            return
        self.members = members[:i] + members[i + 1:]
        del self.nicks[i]
        self.session_ops.discard(member)
        self.session_voiced.discard(member)

    def renamed(self, member: Member) -> None:
        """`member`, one of the room's, changed its nick."""
        self.nicks[self.members.index(member)] = member.nick

    def end_session(self) -> None:
        """Forget what lasted only while people were in it (a room brought back into memory)."""
        self.session_ops.clear()
        self.session_voiced.clear()
        if self.kept_settings is not None:
            self.settings, self.kept_settings = self.kept_settings, None

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

    def __repr__(self) -> str:
        return f"<Room #{self.name} id={self.id} members={len(self.members)}>"


class ChatState:
    """Everything the chat services read and change."""

    def __init__(self, backlog: int) -> None:
        self.backlog = backlog
        self.nicks: dict[str, Member] = {}  # nick key -> registered member
        self.logged_in: dict[str, Member] = {}  # account (nick) key -> the one member logged in to it
        self.rooms: dict[str, Room] = {}  # room key -> room, for the rooms someone is in
        self.lookups: dict[str, RoomLookup] = {}  # room key -> the read bringing that room into memory
        # rooms whose row a failed commit left unwritten (written again with the next one): a lookup that finds
        # nothing in the database brings this room back rather than a new one under the same name
        self.unsaved_rooms: dict[str, Room] = {}
        # rooms whose row a commit wrote while room lookups were at the reader: room key -> the loop's count of
        # commits once it was written. A lookup handed over before that may have found nothing, and is asked again
        # (ChatService.room_found): a second room under the name would have a row that is never written.
        self.rows_written_lately: dict[str, int] = {}
        self.hidden: set[str] = set()  # keys of the hidden rooms in memory (invite-only or secret): /rooms hides them
        self.next_message_id = 1
        self.next_room_id = 1
        self.most_online = 0  # the most nicks held at once since start (LUSERS)
        # those who left a nick lately (quit, or took another), newest last: /whowas (memory only, bounded)
        self.departed: deque[tuple[str, Person]] = deque(maxlen=DEPARTED_KEPT)
        self._busiest: list[Room] = []
        self._busiest_at = float("-inf")

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id = message_id + 1
        return message_id

    def new_room(self, name: str, now: float) -> Room:
        room = Room(self.next_room_id, name, now, self.backlog)
        self.next_room_id += 1
        self.rooms[room.key] = room
        return room

    def found_room(self, found: FoundRoom) -> Room:
        """Bring a room read from the database into memory, with its newest messages."""
        room = self.room_from(found)
        self.mark_hidden(room)
        self.rooms[room.key] = room
        return room

    def room_from(self, found: FoundRoom) -> Room:
        """A room as read from the database, not (yet) in memory: found_room brings it in."""
        stored = found.room
        room = Room(stored.id, stored.name, stored.created_at, self.backlog)
        room.topic, room.topic_by, room.topic_at = stored.topic, stored.topic_set_by, stored.topic_set_at
        room.settings = replace(stored.settings)
        for role in found.roles:
            room.add_role(role)
        room.persisted = True
        room.applied, room.remote = found.seq, dict(found.remote)
        recent = found.recent
        if len(recent) > self.backlog:  # one more than the backlog was read to learn this
            room.older_in_db = True
            recent = recent[len(recent) - self.backlog:]
        room.recent.extend(recent)
        return room

    def room_emptied(self, room: Room) -> None:
        """The last member left: the room leaves memory (the database keeps what it had)."""
        if not room.members and self.rooms.get(room.key) is room:
            del self.rooms[room.key]
            self.hidden.discard(room.key)

    def mark_hidden(self, room: Room) -> None:
        """Keep `hidden` in step with the room's +i and +s."""
        if room.settings.hidden:
            self.hidden.add(room.key)
        else:
            self.hidden.discard(room.key)

    def busiest(self, now: float) -> list[Room]:
        """The ROOMS_PAGE busiest rooms, most members first. A large server recomputes it at most once a second,
        so a flood of /rooms costs one pass over the rooms per second, not one per request."""
        if len(self.rooms) <= ROOM_LIST_FRESH or now - self._busiest_at >= 1.0:
            self._busiest = heapq.nsmallest(ROOMS_PAGE, self.rooms.values(), key=lambda r: (-len(r.members), r.key))
            self._busiest_at = now
        return [r for r in self._busiest if r.members]

    def co_members(self, member: Member, quiet_above: int = 0) -> tuple[Member, ...]:
        """Everyone sharing at least one room with `member`, once each, `member` excluded; with `quiet_above`,
        only rooms of at most that many members count (a quit is not announced in larger ones)."""
        seen: dict[int, Member] = {}
        for room in member.rooms.values():
            if quiet_above and len(room.members) > quiet_above:
                continue
            for other in room.members:
                seen[other.id] = other
        seen.pop(member.id, None)
        return tuple(seen.values())

    def problems(self, live: set[Member]) -> list[str]:
        """Every way this state disagrees with itself or with `live` (the members of open connections). Empty
        when all is well: the stress and property tests check it after every step."""
        found: list[str] = []
        for member in live:
            if member.registered and self.nicks.get(member.key) is not member:
                found.append(f"{member} is registered but does not hold its nick")
            if not member.registered and member.rooms:
                found.append(f"{member} is in rooms without a nick")
            for key, room in member.rooms.items():
                if self.rooms.get(key) is not room or member not in room.members:
                    found.append(f"{member} thinks it is in #{room.name}; the room does not")
            if member.current is not None and member.current not in member.rooms.values():
                found.append(f"{member}'s current room #{member.current.name} is not one of its rooms")
        for key in self.hidden - self.rooms.keys():
            found.append(f"the room {key} is marked hidden but is not in memory")
        for key, member in self.logged_in.items():
            if member not in live or member.account is None or member.account.key != key:
                found.append(f"the account {key} is held by {member}, which is not logged in to it")
        for member in live:
            account = member.account
            if account is not None and self.logged_in.get(account.key) is not member:
                found.append(f"{member} is logged in to {account.key} but the state does not know it")
            if account is not None and member.registered and member.key != account.key:
                found.append(f"{member} is logged in to {account.key} under another nick")
        for key, member in self.nicks.items():
            if member not in live:
                found.append(f"the nick {key} is held by {member}, which is gone")
            if not member.registered or member.key != key or name_key(member.nick) != key:
                found.append(f"the nick {key} is held by {member}, which is not {key}")
        for key, room in self.rooms.items():
            if room.key != key:
                found.append(f"#{room.name} is filed under {key}")
            if not room.members:
                found.append(f"#{room.name} is empty but still in memory")
            if (key in self.hidden) != room.settings.hidden:
                found.append(f"#{room.name}'s hidden mark disagrees with its settings")
            if len(set(room.members)) != len(room.members):
                found.append(f"#{room.name} lists a member twice")
            if room.nicks != [m.nick for m in room.members]:
                found.append(f"#{room.name}'s nicks are not its members' nicks")
            for m in room.members:
                if m not in live or m.rooms.get(key) is not room:
                    found.append(f"#{room.name} lists {m}, which is not in it")
        return found
