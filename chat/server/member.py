"""The chat member: what the services know of a connection (its nick, rooms and cursors), and nothing of its
socket or its protocol. Services address deliveries to members; the deliverer finds each member's connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chat.protocol.events import ChatMessage, DeliveryState, Person
from chat.protocol.masks import subject
from chat.storage.records import StoredAccount

if TYPE_CHECKING:
    from chat.server.account_worker import AccountJob
    from chat.server.connection import Connection
    from chat.server.reads import StorageRead
    from chat.server.state import Room


class Link:
    """Where a member's deliveries go: its connection (chat.server.connection.Connection). Service tests use a
    bare Link: services never look past it."""

    __slots__ = ()


class Member:
    __slots__ = (
        "account", "address", "away", "conn", "current", "cursors", "gone", "host", "id", "key", "last_active",
        "last_message", "last_stored", "new_room_tokens", "new_rooms_at", "nick", "oper_account", "password_for",
        "realname", "registered", "rooms", "signed_on", "user", "waiting", "wallops",
    )  # fmt: skip

    def __init__(self, member_id: int, conn: Link, new_room_burst: int = 0, now: float = 0.0,
                 address: str = "") -> None:
        self.id = member_id
        self.conn: Connection = conn  # type: ignore[assignment]  # a bare Link only in service tests
        self.address = address  # the peer's IP address: failed logins are limited per address too
        self.nick = ""
        self.key = ""
        self.registered = False  # holds a nick
        self.account: StoredAccount | None = None  # the account it is logged in to
        self.oper_account: StoredAccount | None = None  # the admin account whose powers it took with /oper
        self.wallops = False  # user mode +w: it receives /wallops
        # who it says it is (IRC's USER: a user name and a real name; None: its nick), and its away message
        self.user: str | None = None
        self.realname: str | None = None
        self.away: str | None = None
        # the host it is shown with (IRC's nick!user@host, what list masks match): the server's name, for
        # everyone (ChatService.connected sets it): no door shows a client's address
        self.host = ""
        self.signed_on = now  # when it took its first nick (WHOIS shows it)
        self.password_for: str | None = None  # a registered nick it chose: its next plain line is the password
        self.gone = False  # its chat session is over (it quit, or the server ended it): read nothing more
        self.rooms: dict[str, Room] = {}  # key -> room, in the order joined
        self.current: Room | None = None
        # room key (or "@" + nick key, for a private conversation) -> the message id /history continues before
        self.cursors: dict[str, int] = {}
        # reads and password checks in flight for it: its next lines wait until they are answered
        self.waiting: list[StorageRead | AccountJob] = []
        self.last_active = now  # when it last said something (/whois shows it as idle time)
        self.last_message: ChatMessage | None = None  # the last message it sent
        self.last_stored: int | None = None  # the id of a message it sent that is known to be stored
        self.new_room_tokens = float(new_room_burst)  # rooms it may still create now (a token bucket)
        self.new_rooms_at = now

    def sent(self, message: ChatMessage) -> None:
        previous = self.last_message
        if previous is not None and previous.state is DeliveryState.STORED:
            self.last_stored = previous.id
        self.last_message = message

    def last_stored_id(self) -> int | None:
        """The newest message it sent that is stored, as far as is known: what a goodbye tells it was kept."""
        last = self.last_message
        if last is not None and last.state is DeliveryState.STORED:
            return last.id
        return self.last_stored

    def take_new_room(self, now: float, burst: int, per_minute: float) -> bool:
        tokens = min(float(burst), self.new_room_tokens + (now - self.new_rooms_at) * per_minute / 60.0)
        self.new_rooms_at = now
        if tokens >= 1.0:
            self.new_room_tokens = tokens - 1.0
            return True
        self.new_room_tokens = tokens
        return False

    @property
    def operator(self) -> bool:
        """A server operator (IRC's oper, user mode +o): it holds an admin account's powers, logged in to that
        account or by /oper with its name and password. The one definition: moderation.is_admin reads it."""
        account = self.account
        return self.oper_account is not None or (account is not None and account.admin)

    def person(self) -> Person:
        """Who it says it is, for WHO and WHOIS: its nick stands in for a user name or real name not given."""
        return Person(self.nick, self.user or self.nick, self.realname or self.nick, self.away, self.operator)

    def mask_subject(self) -> str:
        """`nick!user@host` as the IRC door shows it, in lower case: what ban and exception masks match."""
        return subject(self.nick, self.user, self.host)

    @property
    def label(self) -> str:
        return f"#{self.id} {self.nick or '-'}"

    def __repr__(self) -> str:
        return f"<Member {self.label}>"
