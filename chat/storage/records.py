"""The plain records the chat services hand to storage and get back from it.

No database library is imported here, so the services (chat.server.service) import and run without one:
storage is the writer's and the reader's business (chat.storage.repository).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from chat.protocol.events import ChatMessage

# invex: an invite exception (+I), a nick or mask let into +i; except: a ban exception (+e), one no ban holds
Role = Literal["op", "voice", "ban", "invite", "invex", "except"]


@dataclass(slots=True)
class RoomSettings:
    """A room's owner and modes. Unowned rooms (made by a guest, or before accounts existed) have no owner."""

    owner_id: int | None = None  # an account id
    owner_nick: str | None = None
    invite_only: bool = False  # +i
    moderated: bool = False  # +m
    topic_ops_only: bool = False  # +t
    key: str | None = None  # +k
    limit: int | None = None  # +l: at most this many members (None: no limit)
    secret: bool = False  # +s: hidden from outsiders, as an invite-only room is
    no_external: bool = True  # +n: only members send to it (on unless an op sets -n, as on IRC servers)

    @property
    def modes(self) -> str:
        """Its modes as IRC's letters, in alphabetical order: "+iklmnst", "" when none is on."""
        letters = "i" * self.invite_only + "k" * (self.key is not None) + "l" * (self.limit is not None) \
            + "m" * self.moderated + "n" * self.no_external + "s" * self.secret + "t" * self.topic_ops_only
        return f"+{letters}" if letters else ""

    @property
    def hidden(self) -> bool:
        """Do outsiders not see it (in /rooms, /who, /whois, its topic, /search)? When invite-only or secret."""
        return self.invite_only or self.secret


@dataclass(slots=True)
class StoredRoom:
    id: int
    name: str
    topic: str | None
    topic_set_by: str | None
    topic_set_at: float | None
    created_at: float
    settings: RoomSettings = field(default_factory=RoomSettings)


@dataclass(slots=True)
class StoredRole:
    """Someone's place in a room: an op or voiced account, a banned or invited account or guest nick."""

    role: Role
    nick: str
    nick_key: str
    account_id: int | None  # None: a guest's nick
    set_by: str
    set_at: float


@dataclass(slots=True)
class StoredAccount:
    """An account (a registered nickname) as the server keeps it for a logged-in member; never its hash."""

    id: int
    nick: str
    key: str
    registered_at: float
    last_seen: float | None = None
    admin: bool = False


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
class SettingsChange:
    room_id: int
    settings: RoomSettings  # a copy: the loop may change the room's own meanwhile


@dataclass(slots=True)
class RoleChange:
    room_id: int
    role: Role
    nick: str
    nick_key: str
    account_id: int | None
    set_by: str
    time: float
    granted: bool  # False: taken away


@dataclass(slots=True)
class PrivateRecord:
    """What a private message's row says beyond the message: its accounts, and whether it waits for delivery."""

    message_id: int
    sender_account: int | None
    recipient_account: int | None
    offline: bool = False  # the recipient (an account) was offline: it waits in `undelivered`

    @property
    def conversation(self) -> str | None:
        """The conversation it belongs to, when both sides were logged in: "low:high" account ids."""
        a, b = self.sender_account, self.recipient_account
        if a is None or b is None:
            return None
        return conversation_key(a, b)


def conversation_key(a: int, b: int) -> str:
    """The key of the private conversation between accounts `a` and `b` (the `conversation` column)."""
    return f"{min(a, b)}:{max(a, b)}"


@dataclass(slots=True)
class Delivered:
    """The private messages waiting for `account_id`, up to `up_to`, were delivered: they wait no more."""

    account_id: int
    up_to: int


# the writes that a failed commit must not lose: they are live already, so they are written again with the next
# commit (a failed commit's messages are another matter: nobody saw them, their senders are told)
LASTING_WRITES = ("users", "topics", "settings", "roles", "delivered")


@dataclass(slots=True)
class RoomEventRecord:
    """Something a clustered node tells the other nodes about a room (chat.server.cluster): written with its
    room's next sequence number, in the order of the batch. `message` for kind "message"; `data` for the others
    (reason, new nick, topic, time, origin). `applied`: the room's last applied number when it was made."""

    room_id: int
    kind: str
    nick: str
    data: dict[str, object] | None = None
    message: ChatMessage | None = None
    applied: int = 0


@dataclass(slots=True)
class WriteBatch:
    """Everything to commit in one transaction. Rooms are inserted if missing, before the messages."""

    rooms: list[StoredRoom] = field(default_factory=list)
    users: list[SeenUser] = field(default_factory=list)
    messages: list[tuple[ChatMessage, int | None]] = field(default_factory=list)  # (message, room id)
    topics: list[TopicChange] = field(default_factory=list)
    private: list[PrivateRecord] = field(default_factory=list)  # for the private messages among `messages`
    settings: list[SettingsChange] = field(default_factory=list)
    roles: list[RoleChange] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)
    # clustered nodes only: room events in order, and presence rows to delete (nick key, member id)
    events: list[RoomEventRecord] = field(default_factory=list)
    presence_gone: list[tuple[str, int]] = field(default_factory=list)
    private_notify: list[tuple[str, ChatMessage]] = field(default_factory=list)  # (the recipient's node, message)
    presence_held: list[tuple[str, str, int]] = field(default_factory=list)  # (nick key, nick, member id) taken
    rejoin: bool = False  # the other nodes reaped this one: what it left is announced gone, and its row made again

    def __bool__(self) -> bool:
        return bool(self.rooms or self.users or self.messages or self.topics or self.settings or self.roles
                    or self.delivered or self.events or self.presence_gone or self.private_notify
                    or self.presence_held or self.rejoin)

    @property
    def messages_only(self) -> bool:
        """Messages and nothing else to write (the store's shortcut for most commits of a busy server)."""
        return bool(self.messages) and not (self.rooms or self.users or self.topics or self.private or self.settings
                                            or self.roles or self.delivered)

    def keep_lasting(self, failed: WriteBatch) -> None:
        """Take over the lasting writes of a failed commit, to write them again."""
        for name in LASTING_WRITES:
            getattr(self, name).extend(getattr(failed, name))
        # a failed message is gone (its sender was told); joins, leaves, topics and quits are live already
        self.events.extend(e for e in failed.events if e.message is None)
        self.presence_gone.extend(failed.presence_gone)
        self.presence_held.extend(failed.presence_held)
        self.rejoin = self.rejoin or failed.rejoin

    def put_first(self, carried: WriteBatch) -> None:
        """Put carried-over lasting writes before this batch's own (newer changes then win)."""
        for name in LASTING_WRITES:
            getattr(self, name)[:0] = getattr(carried, name)
        self.events[:0] = carried.events
        self.presence_gone[:0] = carried.presence_gone
        self.presence_held[:0] = carried.presence_held
        self.rejoin = self.rejoin or carried.rejoin


@dataclass(slots=True)
class LoadedState:
    """What a starting server needs from the database: where the id counters continue. Rooms are not loaded:
    a room comes into memory when someone joins it (chat.server.reads.RoomLookup)."""

    last_message_id: int
    last_room_id: int


@dataclass(slots=True)
class FoundRoom:
    """A room read from the database for a joiner: its row (settings included), its newest messages (oldest
    first), and who is what in it (ops, voiced, bans, invites)."""

    room: StoredRoom
    recent: list[ChatMessage]
    roles: list[StoredRole] = field(default_factory=list)
    # clustered nodes: the room's last event number when read, and the members other nodes hold (key -> nick)
    seq: int = 0
    remote: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EventRow:
    """A room event read back from the database (chat.server.cluster applies it)."""

    room_id: int
    seq: int
    node: str
    kind: str
    nick: str
    data: dict[str, object]
    message: ChatMessage | None
    time: float
