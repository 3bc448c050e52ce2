"""Reads of the database the services ask for: a /history page, a room that is not in memory, a /search page.

A read placed in outbox N runs on the storage reader thread once N is committed, so it sees every write
accepted before it. Its member's next lines wait until it is answered (one read in flight per member), and the
loop answers it on its own thread. A read whose members are all gone is skipped, not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from chat.protocol.errors import ChatError
from chat.protocol.events import ChatMessage, Target
from chat.search.query import SearchQuery
from chat.search.scope import SearchScope
from chat.server.member import Member
from chat.server.state import fitting_around, newest_fitting
from chat.storage.records import EventRow, FoundRoom, StoredAccount

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from chat.storage.accounts import AccountStore, KnownNick
    from chat.storage.cluster import ListedRoom, RemoteWhois


class OneMemberRead:
    """A read for one member: it waits on it alone, and is skipped once that member has gone."""

    __slots__ = ()
    member: Member

    @property
    def members(self) -> list[Member]:
        return [self.member]

    @property
    def cancelled(self) -> bool:
        return self.member.gone


@dataclass(slots=True, eq=False)
class HistoryRequest:
    """A page of a room's messages: the newest `limit` before `before`, the oldest `limit` after `after`, or
    `limit` around message `around` (it and the older ones before it, half the page; newer ones after it).
    `room_id` is None for a room that is not in memory: the reader finds it by `room_key`."""

    member: Member
    room_key: str
    room_name: str
    room_id: int | None
    limit: int
    before: int | None = None
    after: int | None = None
    around: int | None = None
    # by time (milliseconds): the storage reader turns them into `before` (messages before the moment) and `after`
    before_ms: int | None = None
    after_ms: int | None = None
    continues: bool = False  # a plain /history: the member's cursor moves to the start of this page
    # the answer
    messages: list[ChatMessage] = field(default_factory=list)
    more: bool = False
    newer: bool = False  # around: newer messages exist after the last one
    found: bool = True
    room: FoundRoom | None = None  # a room not in memory: its settings, to check the member may read it
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
    keys: dict[int, str] = field(default_factory=dict)  # member id -> the room key a joiner gave
    handed_over_after: int = 0  # how many commits the loop had seen when it gave this to the reader
    # the answer
    read: bool = False  # the reader ran it (it skips one nobody waits for, but joiners may come before the answer)
    found: FoundRoom | None = None
    error: Exception | None = None

    @property
    def members(self) -> list[Member]:
        return [*self.joiners, *self.askers]

    @property
    def cancelled(self) -> bool:
        return all(m.gone for m in self.members)


@dataclass(slots=True, eq=False)
class RoomEventsRead:
    """A clustered node's read of a room's events after the number it applied last (chat.server.cluster)."""

    room_id: int
    after: int
    events: list[EventRow] = field(default_factory=list)
    error: Exception | None = None
    cancelled: bool = False

    @property
    def members(self) -> list[Member]:
        return []


@dataclass(slots=True, eq=False)
class InboxRead:
    """A clustered node's read of its inbox: the private messages other nodes stored for nicks held here, after
    the number it delivered last (chat.server.cluster)."""

    after: int
    entries: list[tuple[int, ChatMessage]] = field(default_factory=list)  # (number, message), in order
    error: Exception | None = None
    cancelled: bool = False

    @property
    def members(self) -> list[Member]:
        return []


@dataclass(slots=True, eq=False)
class RoomListRead(OneMemberRead):
    """A clustered node's /rooms: the busiest rooms counted on every node (chat.storage.cluster.busiest_rooms).
    `seen` and `hidden`: the invite-only rooms in this node's memory the member may see, and may not."""

    member: Member
    seen: list[int]
    hidden: list[int]
    every: bool  # a server admin: invite-only rooms too
    # the answer
    rooms: list[ListedRoom] = field(default_factory=list)
    total: int = 0
    error: Exception | None = None


@dataclass(slots=True, eq=False)
class HolderRead(OneMemberRead):
    """A clustered node's /who of a nick nobody here holds: whether another node's member holds it
    (chat.storage.cluster.presence_of)."""

    member: Member
    key: str
    mask: str  # as asked
    node: str  # this node's name
    # the answer: the nick as spelled, if held on another node
    nick: str | None = None
    error: Exception | None = None


@dataclass(slots=True, eq=False)
class TargetRead(OneMemberRead):
    """A clustered node's /op, +v or /invite of a nick nobody here holds: whether another node's member holds it,
    and its account if it is one (chat.server.moderation: `target_read`)."""

    member: Member
    room_key: str
    key: str
    action: Literal["op", "voice", "invite"]
    give: bool
    node: str  # this node's name
    # the answer: the nick as spelled if another node holds it, and its account
    nick: str | None = None
    account: StoredAccount | None = None
    error: Exception | None = None


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


@dataclass(slots=True, eq=False)
class NickLookup(OneMemberRead):
    """What the database knows of a nick nobody online holds: asked when someone chooses it (is it registered?),
    for /whois, and for a private message to someone offline (an account gets it on its next login)."""

    member: Member
    key: str
    nick: str
    purpose: Literal["claim", "whois", "msg"]
    text: str = ""  # purpose "msg": the message
    notice: bool = False  # ... sent as a notice (IRC's NOTICE)
    node: str | None = None  # a clustered node's name: a claim also takes the nick across the cluster
    taken: bool = False  # the answer of such a claim: another node's member holds it
    remote: tuple[str, str] | None = None  # purpose "msg", clustered: (node, nick) of its holder on another node
    elsewhere: RemoteWhois | None = None  # purpose "whois", clustered: its holder on another node
    # the answer
    found: KnownNick | None = None
    error: Exception | None = None

    @property
    def early(self) -> bool:
        """Whether a nick is an account is written by the account workers, committed before they answer: this
        read need not wait for the writer's commit (a nick claimed by each new client must not cost one). A
        message to someone offline counts the messages waiting for them, which the writer writes: it waits."""
        return self.purpose != "msg"

    def run(self, accounts: AccountStore, page_budget: int) -> None:
        self.found = accounts.known(self.key)
        if self.node is not None and self.purpose == "claim" and (self.found is None or self.found.account is None):
            from chat.storage.cluster import claim_presence

            self.taken = not claim_presence(accounts.engine, self.key, self.nick, self.node, self.member.id)
        elif self.node is not None and self.purpose == "msg":
            from chat.storage.cluster import presence_of

            holder = presence_of(accounts.engine, self.key)
            self.remote = holder if holder is not None and holder[0] != self.node else None
        elif self.node is not None and self.purpose == "whois":
            from chat.storage.cluster import whois_remote

            account = self.found.account if self.found is not None else None
            self.elsewhere = whois_remote(accounts.engine, self.key, self.node, account.id if account else None)


@dataclass(slots=True, eq=False)
class PrivateHistoryRequest(OneMemberRead):
    """A page of a logged-in member's conversation with the account `other_key` (see HistoryRequest for the
    paging). `other_id` is known when the other side is online; otherwise the reader finds it."""

    member: Member
    account_id: int
    other_key: str
    other_nick: str
    limit: int
    other_id: int | None = None
    before: int | None = None
    after: int | None = None
    around: int | None = None
    before_ms: int | None = None  # by time, as HistoryRequest's
    after_ms: int | None = None
    continues: bool = False
    # the answer
    messages: list[ChatMessage] = field(default_factory=list)
    more: bool = False
    newer: bool = False  # around: newer messages exist after the last one
    found: bool = True  # False: `other_key` is no account
    error: Exception | None = None

    def run(self, accounts: AccountStore, page_budget: int) -> None:
        if self.other_id is None:
            known = accounts.known(self.other_key)
            if known is None or known.account is None:
                self.found = False
                return
            self.other_id, self.other_nick = known.account.id, known.account.nick
        if self.before_ms is not None or self.after_ms is not None:
            from chat.storage.repository import conversation_of, first_id_from  # (services import no database)

            where = conversation_of(self.account_id, self.other_id)
            if self.before_ms is not None:
                self.before = first_id_from(accounts.engine, where, self.before_ms)
            if self.after_ms is not None:
                self.after = first_id_from(accounts.engine, where, self.after_ms + 1) - 1
        if self.around is not None:  # as a room's (chat.server.storage_worker): half the page up to it, then newer
            newer_count = self.limit // 2
            older, more = accounts.conversation(self.account_id, self.other_id, self.limit - newer_count,
                                                before=self.around + 1)
            newer, newer_more = (accounts.conversation(self.account_id, self.other_id, newer_count,
                                                       after=self.around) if newer_count else ([], False))
            self.messages, older_cut, newer_cut = fitting_around(older, newer, page_budget)
            self.more, self.newer = more or older_cut, newer_more or newer_cut
            return
        messages, more = accounts.conversation(self.account_id, self.other_id, self.limit, self.before, self.after)
        if self.after is None:
            messages, cut = newest_fitting(messages, page_budget)
        else:
            kept, cut = newest_fitting(messages[::-1], page_budget)
            messages = kept[::-1]
        self.messages, self.more = messages, more or cut


@dataclass(slots=True, eq=False)
class WaitingMessages(OneMemberRead):
    """The private messages sent to an account while it was offline, read as it logs in (oldest first, as many
    as fit in a page)."""

    member: Member
    account_id: int
    limit: int
    # the answer
    messages: list[ChatMessage] = field(default_factory=list)
    total: int = 0  # how many wait in all (more than `messages` when they did not all fit)
    error: Exception | None = None

    def run(self, accounts: AccountStore, page_budget: int) -> None:
        messages, self.total = accounts.waiting_messages(self.account_id, self.limit)
        kept, _cut = newest_fitting(messages[::-1], page_budget)  # the oldest that fit: the rest wait on
        self.messages = kept[::-1]


@dataclass(slots=True, eq=False)
class TargetsRead(OneMemberRead):
    """/targets (IRC's CHATHISTORY TARGETS): the member's rooms (id -> name) and, logged in, its private
    conversations, by their latest message (chat.storage.repository.latest_targets)."""

    member: Member
    rooms: dict[int, str]
    account_id: int | None
    after_ms: int
    before_ms: int
    limit: int
    # the answer
    targets: list[Target] = field(default_factory=list)
    error: Exception | None = None

    def run(self, engine: Engine) -> None:
        from chat.storage.repository import latest_targets  # (services import no database library)

        self.targets = latest_targets(engine, self.rooms, self.account_id, self.after_ms, self.before_ms, self.limit)


AccountRead = NickLookup | PrivateHistoryRequest | WaitingMessages
StorageRead = (HistoryRequest | RoomLookup | SearchRequest | RoomEventsRead | InboxRead | RoomListRead
               | HolderRead | TargetRead | TargetsRead | NickLookup | PrivateHistoryRequest | WaitingMessages)
