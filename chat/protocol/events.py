"""What the server tells clients: one class per event type.

Events are plain data. `chat.protocol.render` turns each into text lines or one JSON object; the server
renders an event once per format, however many people receive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from chat.protocol.errors import ErrorCode


class MessageKind(StrEnum):
    MESSAGE = "message"  # a line said in a room
    ACTION = "action"  # /me in a room
    PRIVATE = "private"  # /msg NICK
    NOTICE = "notice"  # IRC's NOTICE to a room: a message that asks for no answer (bots, services)
    PRIVATE_NOTICE = "private_notice"  # IRC's NOTICE to a nick


PRIVATE_KINDS = frozenset({MessageKind.PRIVATE, MessageKind.PRIVATE_NOTICE})  # to a nick, not a room
NOTICE_KINDS = frozenset({MessageKind.NOTICE, MessageKind.PRIVATE_NOTICE})


class DeliveryState(StrEnum):
    PENDING = "pending"  # accepted, not yet committed
    STORED = "stored"  # committed: may be shown to anyone
    FAILED = "failed"  # the commit failed: never shown, the sender was told


@dataclass(slots=True, eq=False)
class ChatMessage:
    """A message as stored and as delivered live. `id` grows with every message the server accepts."""

    id: int
    kind: MessageKind
    nick: str
    text: str
    time: float  # seconds since the epoch, UTC
    room: str | None = None  # room name for room messages and actions
    to: str | None = None  # recipient nick for private messages
    state: DeliveryState = DeliveryState.STORED
    # IRCv3 client-only tags (`+draft/reply`...) it was sent with: relayed with the live message, never stored
    client_tags: dict[str, str] | None = None

    @property
    def private(self) -> bool:
        return self.kind in PRIVATE_KINDS

    @property
    def notice(self) -> bool:
        return self.kind in NOTICE_KINDS


@dataclass(slots=True, eq=False)
class Hello:
    server: str
    version: str
    max_line: int  # the longest line the server takes, in bytes (newline excluded)


@dataclass(slots=True, eq=False)
class Notice:
    text: str


@dataclass(slots=True, eq=False)
class Welcome:
    nick: str
    max_line: int
    online: Online | None = None  # how many are online as you arrive (IRC shows it as LUSERS' numbers)


@dataclass(slots=True, eq=False)
class NickChange:
    old: str
    new: str
    time: float


@dataclass(slots=True, eq=False)
class Join:
    """Somebody joined a room (sent to the members already there)."""

    room: str
    nick: str
    time: float
    away: str | None = None  # its away message, if it is away (IRC's away-notify tells it on joining)


@dataclass(slots=True, eq=False)
class Joined:
    """You joined a room: sent to the joiner before the room's backlog. `ops` and `voiced` are the members who
    are the room's ops (its owner included) and who have a voice. `count`: how many members it has, you included.
    `quiet`: the room is large (the server's `--quiet-above`), so joins, leaves and quits in it are not
    announced, and `members` lists only its ops and voiced members and you (as Twitch's IRC does past 1,000):
    a list of thousands for every joiner would cost its square. /who lists everyone."""

    room: str
    members: list[str]
    topic: str | None
    time: float
    ops: list[str] = field(default_factory=list)
    voiced: list[str] = field(default_factory=list)
    quiet: bool = False
    count: int = 0
    topic_by: str | None = None  # who set the topic
    topic_at: float | None = None  # and when
    secret: bool = False  # the room is secret (+s): outsiders do not see it


@dataclass(slots=True, eq=False)
class Current:
    """Your current room (where plain lines go) changed without a join: a /join of a room you were in, or a
    /leave of the current room. None: you are in no room."""

    room: str | None


@dataclass(slots=True, eq=False)
class Part:
    room: str
    nick: str
    reason: str | None
    time: float


@dataclass(slots=True, eq=False)
class Quit:
    nick: str
    reason: str | None
    time: float


@dataclass(slots=True, eq=False)
class Topic:
    room: str
    topic: str | None
    nick: str | None  # who set it
    time: float | None  # when it was set
    change: bool  # True: it just changed; False: the answer to a question


@dataclass(slots=True, eq=False)
class History:
    """Earlier messages of a room, oldest first: the backlog on joining, a page of /history, or (`reason`
    "around") the messages around one message, `around`, as /history ROOM around ID asks to jump to a search result.

    `more` tells whether older messages exist before the first one here; `newer` (around only) whether newer
    ones exist after the last.
    """

    room: str
    messages: list[ChatMessage]
    more: bool
    reason: Literal["backlog", "page", "around"] = "backlog"
    around: int | None = None
    newer: bool = False


@dataclass(slots=True, eq=False)
class SearchResults:
    """A page of /search: `messages` newest first; `more`: older matches may exist (search again with `before`);
    `indexing`: messages older than the search index are not all indexed yet, so older matches may be missing."""

    query: str  # as the server understood it (canonical: sending it back gives the same search)
    messages: list[ChatMessage]
    more: bool
    before: int | None  # where the next page starts (the oldest result's id), when `more`
    indexing: bool = False


@dataclass(slots=True, eq=False)
class RoomInfo:
    room: str
    members: int
    topic: str | None


@dataclass(slots=True, eq=False)
class RoomList:
    """The busiest rooms (at most chat.protocol.names.ROOMS_PAGE), most members first; `total` rooms have
    people in them."""

    rooms: list[RoomInfo]
    total: int


@dataclass(slots=True, eq=False)
class Person:
    """Who someone online says they are: what WHO and WHOIS show beside the nick."""

    nick: str
    user: str  # IRC's user name (the nick, for clients that gave none)
    realname: str  # (the nick, likewise)
    away: str | None = None  # the away message, when away
    oper: bool = False  # a server operator (chat.server.member.Member.operator)


@dataclass(slots=True, eq=False)
class Who:
    """The members of `room` (oldest first), or, for a question about people (`mask`: a nick or a mask with * and
    ?), those it matches (`room` empty)."""

    room: str
    members: list[str]
    ops: list[str] = field(default_factory=list)  # those of `members` who are ops
    voiced: list[str] = field(default_factory=list)  # ... who have a voice
    people: list[Person] = field(default_factory=list)  # each of `members`, in the same order
    mask: str | None = None
    secret: bool = False  # the room is secret (+s)


@dataclass(slots=True, eq=False)
class WhoWas:
    """Those who used `nick` lately and have gone (quit, or took another nick), the latest first."""

    nick: str
    people: list[Person]


@dataclass(slots=True, eq=False)
class Online:
    """How many people are online, the most there were since the server started, and the rooms open."""

    people: int
    most: int
    rooms: int


@dataclass(slots=True, eq=False)
class Away:
    """`nick`, whom you wrote to, is away (`message`). To yourself (`you`): your own away message changed (None:
    back). To those sharing a room with `nick` (`changed`): its away message changed."""

    nick: str
    message: str | None
    you: bool = False
    changed: bool = False


@dataclass(slots=True, eq=False)
class AccountChange:
    """Your connection's account changed: you registered your nickname, logged in or out, or changed the
    password. `account` is the account's name (its nickname); `nick` is your nickname now."""

    change: Literal["registered", "logged_in", "logged_out", "password_changed"]
    account: str
    nick: str


@dataclass(slots=True, eq=False)
class PasswordWanted:
    """The nickname you chose is registered: the next plain line you send is taken as its password (or choose
    another nickname)."""

    nick: str


@dataclass(slots=True, eq=False)
class WhoIs:
    nick: str
    online: bool
    registered: bool
    registered_at: float | None  # when the account was made (registered nicks only)
    last_seen: float | None  # when it was last online (registered nicks that are offline)
    idle: float | None  # seconds since it last said something (online only)
    rooms: list[str]  # its rooms you may see (every room it is in but the invite-only ones you are not of)
    admin: bool = False  # a server operator: logged in to an admin account, or by /oper (Member.operator)
    person: Person | None = None  # online only
    signed_on: float | None = None  # when it took its first nick (online only)
    op_in: list[str] = field(default_factory=list)  # those of `rooms` where it is an op
    voiced_in: list[str] = field(default_factory=list)  # ... where it has a voice


@dataclass(slots=True, eq=False)
class PrivateHistory:
    """Private messages, oldest first: a page of your conversation with `nick` (`reason` "page"), or the
    messages sent to you while you were away (`nick` None, `reason` "offline"), delivered as you log in; or the
    messages around one (`reason` "around", as History's)."""

    nick: str | None
    messages: list[ChatMessage]
    more: bool
    reason: Literal["page", "offline", "around"] = "page"
    around: int | None = None
    newer: bool = False


@dataclass(slots=True, eq=False)
class Kick:
    """`nick` was put out of `room` by `by` (sent to the room, the one kicked included)."""

    room: str
    nick: str
    by: str
    reason: str | None
    time: float


ModeChange = Literal["+i", "-i", "+k", "-k", "+l", "-l", "+m", "-m", "+n", "-n", "+s", "-s", "+t", "-t", "+o", "-o",
                     "+v", "-v", "+b", "-b", "+I", "-I", "+e", "-e"]


@dataclass(slots=True, eq=False)
class Mode:
    """One change of a room's settings or of someone's place in it, by `nick`. `mode` is IRC's letter with its
    sign: +i/-i invite-only, +k/-k a key to join (never shown here), +l/-l a member limit, +m/-m moderated,
    +n/-n no messages from outside, +s/-s secret, +t/-t only ops set the topic, +o/-o op, +v/-v voice, +b/-b
    ban; `target` is the nick for o, v and b, and the limit (digits) for +l."""

    room: str
    nick: str
    mode: ModeChange
    target: str | None
    time: float


@dataclass(slots=True, eq=False)
class Invite:
    """`nick` invited `target` to `room` (sent to both)."""

    room: str
    nick: str
    target: str


@dataclass(slots=True, eq=False)
class RoomModes:
    """A room's settings, the answer to `/mode ROOM`. `key`, `bans` and `invited` are shown to its ops only."""

    room: str
    modes: str  # "+iklmnst", "" when none is set
    owner: str | None
    key: str | None
    ops: list[str]
    voiced: list[str]
    bans: list[str]
    invited: list[str]
    created_at: float | None = None  # when the room was made
    limit: int | None = None  # its member limit (+l), shown to everyone
    invite_exceptions: list[str] = field(default_factory=list)  # +I: nicks and masks let in uninvited (ops only)
    ban_exceptions: list[str] = field(default_factory=list)  # +e: nicks and masks no ban holds (ops only)


@dataclass(slots=True, eq=False)
class TagMessage:
    """IRCv3's TAGMSG: client-only tags with no text (a typing notice, a reaction) to a room or a nick. Relayed to
    who would get a message there, never stored; `id` is a message id of its own (ids may skip), as its msgid."""

    id: int
    nick: str
    tags: dict[str, str]
    time: float
    room: str | None = None
    to: str | None = None


@dataclass(slots=True, eq=False)
class Operator:
    """You hold the server operator powers of the admin account `account` now (/oper, IRC's OPER)."""

    nick: str
    account: str


@dataclass(slots=True, eq=False)
class UserModes:
    """Your user modes (`change` False: the answer to /umode), or a change of them (`change` True: `modes` is
    what changed, `+w` or `-o`). o: a server operator; w: you receive /wallops."""

    nick: str
    modes: str
    change: bool = False


@dataclass(slots=True, eq=False)
class Wallops:
    """A server operator's message to everyone who receives them (user mode +w). Not stored: not a chat message."""

    nick: str
    text: str
    time: float


@dataclass(slots=True, eq=False)
class ServerTime:
    """The server's clock, the answer to /time."""

    time: float


@dataclass(slots=True, eq=False)
class Help:
    command: str | None
    lines: list[str]


@dataclass(slots=True, eq=False)
class Pong:
    token: str | None


@dataclass(slots=True, eq=False)
class FormatChanged:
    format: str


@dataclass(slots=True, eq=False)
class Error:
    code: ErrorCode
    message: str
    command: str | None = None  # the verb refused (`say` for a plain line)
    subject: str | None = None  # the nick or room it is about, when there is one
    room: str | None = None  # the room, when `subject` is a nick and the refusal concerns a room


@dataclass(slots=True, eq=False)
class Bye:
    """The server is closing this connection; `code` says why when it was not the client's own /quit."""

    reason: str
    code: ErrorCode | None = None
    last_id: int | None = None  # the newest message you sent that was stored, when the server ended it for you


@dataclass(slots=True, eq=False)
class Target:
    """A room (`room`) or a private conversation (`nick`: the other side), and the time of its latest message."""

    room: str | None
    nick: str | None
    time: float


@dataclass(slots=True, eq=False)
class Targets:
    """The answer to /targets (IRC's CHATHISTORY TARGETS): the latest message's time of each, oldest first."""

    targets: list[Target]


Event = (
    ChatMessage | Hello | Notice | Welcome | NickChange | Join | Joined | Current | Part | Quit | Topic | History
    | SearchResults | RoomList | Who | Help | Pong | FormatChanged | Error | Bye | AccountChange | PasswordWanted
    | WhoIs | PrivateHistory | Kick | Mode | Invite | RoomModes | Away | WhoWas | Online | Operator | UserModes
    | Wallops | ServerTime | TagMessage | Targets
)
