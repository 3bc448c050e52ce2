"""Slash commands: one frozen pydantic model each, one discriminated union, one parser.

`parse_line(line)` turns a line a client sent into a validated command model, or raises `ChatError`.
A line that does not start with `/` is `Say` (text for the current room); `//text` says `/text`;
`!DISCONNECT` (the classic tutorial's way out) is `Quit`. Verbs are case-insensitive.

Each model declares its own grammar (`words`, `required`, `tail`), whether it needs a nickname first
(`needs_nick`), its aliases and its help; the verb table is derived from the union, so the union is the only
list anyone maintains.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.masks import WORD_MAX
from chat.protocol.names import KEY_MAX, ROOMS_PAGE, TOPIC_MAX, check_member_limit, check_nick, check_room
from chat.protocol.text import sanitize
from chat.search.query import parse_search

HISTORY_MAX = 500
SEARCH_PAGE = 20  # results one /search answers with
QUIT_WORD = "!DISCONNECT"  # the classic tutorial's way out, a plain line rather than a command
MESSAGE_ID_MAX = (1 << 63) - 1  # ids are 64-bit in the database; anything larger cannot name a message
MILLIS_MAX = 253402300800000  # 10000-01-01: past any time a datetime holds
PRIVATE_PREFIX = "@"  # /history @NICK: a conversation, not a room
# every mode letter /mode takes (IRC's), and whether setting it takes a word (a key, a limit, a nick)
MODE_LETTERS = {"i": False, "k": True, "l": True, "m": False, "n": False, "s": False, "t": False, "o": True,
                "v": True, "b": True, "I": True, "e": True}
UNSET_WITHOUT_WORD = frozenset("kl")  # -k and -l take no word: a room has one key, one limit


def _as_custom_error(check: Any) -> Any:
    """Turn a ChatError raised by a name rule into a pydantic error that keeps its code."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except ChatError as e:
            raise PydanticCustomError(e.code.value, e.message) from None

    return validate


NickName = Annotated[str, AfterValidator(_as_custom_error(check_nick))]
RoomName = Annotated[str, AfterValidator(_as_custom_error(check_room))]
Text = Annotated[str, Field(min_length=1), AfterValidator(sanitize)]


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    usage: ClassVar[str] = ""
    summary: ClassVar[str]
    details: ClassVar[tuple[str, ...]] = ()
    needs_nick: ClassVar[bool] = True
    words: ClassVar[tuple[str, ...]] = ()  # one-word parameters, in order
    required: ClassVar[int] = 0  # how many of `words` must be given
    tail: ClassVar[str | None] = None  # parameter that takes the rest of the line, spacing kept
    tail_required: ClassVar[bool] = False

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        """Split what follows the verb into this command's parameters (before validation)."""
        args: dict[str, Any] = {}
        for word in cls.words:
            rest = rest.lstrip(" ")
            if not rest:
                break
            value, _, rest = rest.partition(" ")
            args[word] = value
        rest = rest.lstrip(" ")
        if len(args) < cls.required or (cls.tail_required and not rest):
            raise ChatError(ErrorCode.BAD_ARGUMENT, f"Usage: {cls.syntax()}")
        if rest:
            if cls.tail is None:
                raise ChatError(ErrorCode.BAD_ARGUMENT, f"Too many arguments. Usage: {cls.syntax()}")
            args[cls.tail] = rest
        return args

    @classmethod
    def syntax(cls) -> str:
        return f"/{cls.name} {cls.usage}".rstrip()


class Say(Command):
    """A plain line: text for the current room."""

    verb: Literal["say"] = "say"
    text: Text
    name = "say"
    usage = "TEXT"
    summary = "Say TEXT in your current room (the same as typing a line without a /)."
    tail = "text"
    tail_required = True


USER_MAX = 16  # characters of an IRC user name (USERLEN)
REALNAME_MAX = 100  # characters of a real name
AWAY_MAX = 200  # characters of an away message (AWAYLEN): a longer one is cut


def _user_name(value: str | None) -> str | None:
    """IRC's USER name: printable ASCII without spaces or the characters of a `nick!user@host` (else none)."""
    if value is None:
        return None
    kept = "".join(c for c in value if "!" < c <= "~" and c not in "@!")[:USER_MAX]
    return kept or None


def _real_name(value: str | None) -> str | None:
    return (sanitize(value)[:REALNAME_MAX] or None) if value else None


class Nick(Command):
    verb: Literal["nick"] = "nick"
    nick: NickName
    # who the client says it is, before its first nick (IRC's USER); no native syntax sets them
    user: Annotated[str | None, AfterValidator(_user_name)] = None
    realname: Annotated[str | None, AfterValidator(_real_name)] = None
    name = "nick"
    usage = "NAME"
    summary = "Choose your nickname, or change it."
    needs_nick = False
    words = ("nick",)
    required = 1


class Join(Command):
    verb: Literal["join"] = "join"
    room: RoomName
    key: Annotated[str, Field(max_length=KEY_MAX)] | None = None
    name = "join"
    aliases = ("j",)
    usage = "ROOM [KEY]"
    summary = "Join ROOM (created if new) and make it your current room; you get its recent history."
    details = (
        "Already in ROOM? It just becomes your current room. The # before a room name is optional.",
        "KEY is the room's password, for a room that has one (/mode ROOM +k KEY).",
        "The first logged-in user to join a new room becomes its owner (see /op, /kick, /ban, /mode); the first "
        "one into a room nobody owns is its op while there.",
    )
    words = ("room", "key")
    required = 1


class Leave(Command):
    verb: Literal["leave"] = "leave"
    room: RoomName | None = None
    reason: Text | None = None
    name = "leave"
    aliases = ("part",)
    usage = "[ROOM] [REASON]"
    summary = "Leave ROOM (default: your current room), telling its members REASON."
    words = ("room",)
    tail = "reason"


class Msg(Command):
    verb: Literal["msg"] = "msg"
    target: str
    text: Text
    notice: bool = False  # IRC's NOTICE: stored and shown as a notice (no native grammar gives it: codecs set it)
    client_tags: dict[str, str] | None = None  # IRCv3 client-only tags, relayed live (codecs set them)
    name = "msg"
    aliases = ("query", "tell")
    usage = "NICK|#ROOM TEXT"
    summary = "Send TEXT privately to NICK, or to #ROOM (a room you are in) without switching to it."
    details = ("Here the # tells a room from a nick: /msg bob hi is private, /msg #dev hi goes to room dev.",)
    words = ("target",)
    required = 1
    tail = "text"
    tail_required = True

    @property
    def to_room(self) -> bool:
        return self.target.startswith("#")

    def model_post_init(self, context: Any) -> None:
        check = check_room if self.to_room else check_nick
        check(self.target)  # raises ChatError with invalid_room / invalid_nick


class Me(Command):
    verb: Literal["me"] = "me"
    room: RoomName | None = None
    text: Text
    client_tags: dict[str, str] | None = None  # IRCv3 client-only tags, relayed live (codecs set them)
    name = "me"
    usage = "[#ROOM] ACTION"
    summary = "Describe an action in your current room (or in #ROOM): /me waves shows as * alice waves."
    tail = "text"
    tail_required = True

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        rest = rest.lstrip(" ")
        first, _, after = rest.partition(" ")
        if first.startswith("#") and after.strip(" "):  # like /msg and /topic, the # marks a room
            return {"room": first, "text": after.lstrip(" ")}
        return super().arguments(rest)


class Rooms(Command):
    verb: Literal["rooms"] = "rooms"
    name = "rooms"
    aliases = ("list",)
    summary = f"List the busiest rooms (at most {ROOMS_PAGE}) with member counts and topics."


class Who(Command):
    verb: Literal["who"] = "who"
    room: RoomName | None = None
    # people rather than a room: a nick, or a mask with * and ? (IRC's `WHO mask`; no native syntax)
    mask: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    name = "who"
    aliases = ("names",)
    usage = "[ROOM]"
    summary = "List the members of ROOM (default: your current room)."
    words = ("room",)


class Away(Command):
    verb: Literal["away"] = "away"
    text: Annotated[str, AfterValidator(sanitize)] | None = None
    name = "away"
    usage = "[MESSAGE]"
    summary = "Mark yourself away with MESSAGE (whoever writes to you or /whois you sees it); /away alone: back."
    details = (f"A message longer than {AWAY_MAX} characters is cut.",)
    tail = "text"


class Topic(Command):
    verb: Literal["topic"] = "topic"
    room: RoomName | None = None
    text: Annotated[str, Field(min_length=1, max_length=TOPIC_MAX), AfterValidator(sanitize)] | None = None
    name = "topic"
    usage = "[#ROOM] [TEXT]"
    summary = "Show the topic of a room, or set it to TEXT (- clears it)."
    details = (
        "Without #ROOM it is your current room; the # is needed here, to tell a room from the topic text.",
        "You must be in a room to set its topic.",
        f"A topic is at most {TOPIC_MAX} characters.",
    )

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        rest = rest.strip(" ")
        args: dict[str, Any] = {}
        if rest.startswith("#"):
            args["room"], _, rest = rest.partition(" ")
            rest = rest.strip(" ")
        if rest:
            args["text"] = rest
        return args

    @property
    def clears(self) -> bool:
        return self.text == "-"


class History(Command):
    verb: Literal["history"] = "history"
    room: RoomName | None = None
    nick: NickName | None = None  # /history @NICK: the private conversation with NICK
    count: Annotated[int, Field(ge=1, le=HISTORY_MAX)] = 20
    before: Annotated[int, Field(ge=1, le=MESSAGE_ID_MAX)] | None = None
    after: Annotated[int, Field(ge=0, le=MESSAGE_ID_MAX)] | None = None
    around: Annotated[int, Field(ge=1, le=MESSAGE_ID_MAX)] | None = None  # ID and the messages on both sides of it
    # by time (IRC's CHATHISTORY timestamp=; milliseconds since 1970, UTC): messages before it, or after it
    before_ms: Annotated[int, Field(ge=0, le=MILLIS_MAX)] | None = None
    after_ms: Annotated[int, Field(ge=0, le=MILLIS_MAX)] | None = None
    name = "history"
    usage = "[ROOM|@NICK] [N] [before|after|around ID]"
    summary = f"Show N (default 20, at most {HISTORY_MAX}) older messages of a room; again to page back."
    details = (
        "Each /history continues from the oldest message you were shown in that room.",
        "before ID / after ID choose the place instead (message ids are in JSON events and search results).",
        "around ID shows message ID with the messages before and after it (to open a /search result).",
        "@NICK pages your private conversation with NICK instead: for logged-in users, with a registered NICK.",
    )

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        words = rest.split()
        args: dict[str, Any] = {}
        if words and words[0].startswith(PRIVATE_PREFIX):
            args["nick"] = words.pop(0)[len(PRIVATE_PREFIX):]
        elif words and not words[0].isdigit() and words[0].lower() not in ("before", "after"):
            args["room"] = words.pop(0)
        if words and words[0].isdigit():
            args["count"] = words.pop(0)
        if len(words) == 2 and words[0].lower() in ("before", "after", "around"):
            args[words[0].lower()] = words[1]
            words = []
        if words:
            raise ChatError(ErrorCode.BAD_ARGUMENT, f"Usage: {cls.syntax()}")
        return args

    @property
    def placed(self) -> bool:
        """Does it say where the page is (an id or a time)? Else it continues from the oldest message shown."""
        return not (self.before is None and self.after is None and self.around is None and self.before_ms is None
                    and self.after_ms is None)


class Targets(Command):
    verb: Literal["targets"] = "targets"
    count: Annotated[int, Field(ge=1, le=HISTORY_MAX)] = 20
    # the window (IRC's CHATHISTORY TARGETS timestamp= timestamp=; milliseconds since 1970, UTC), both ends apart
    after_ms: Annotated[int, Field(ge=0, le=MILLIS_MAX)] = 0
    before_ms: Annotated[int, Field(ge=0, le=MILLIS_MAX)] = MILLIS_MAX
    name = "targets"
    usage = "[N]"
    summary = ("Your rooms and private conversations by their latest message, oldest first: where something was "
               "said last.")
    words = ("count",)


class Help(Command):
    verb: Literal["help"] = "help"
    command: str | None = None
    name = "help"
    usage = "[COMMAND]"
    summary = "List the commands, or explain one."
    needs_nick = False
    words = ("command",)


class Quit(Command):
    verb: Literal["quit"] = "quit"
    reason: Text | None = None
    name = "quit"
    aliases = ("disconnect", "exit", "bye")
    usage = "[REASON]"
    summary = f"Leave the server (so does /DISCONNECT or {QUIT_WORD}); your rooms are told REASON."
    needs_nick = False
    tail = "reason"


class Format(Command):
    verb: Literal["format"] = "format"
    format: Literal["text", "json"]
    name = "format"
    usage = "text|json"
    summary = "Switch this connection's output to JSON lines (for programs) or back to text."
    needs_nick = False
    words = ("format",)
    required = 1

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        args = super().arguments(rest)
        args["format"] = args["format"].lower()
        return args


def _checked_search(query: str) -> str:
    parse_search(query)  # raises ChatError(bad_search), saying what is wrong
    return query


class Search(Command):
    verb: Literal["search"] = "search"
    query: Annotated[str, AfterValidator(_as_custom_error(_checked_search))]
    before: Annotated[int, Field(ge=1, le=MESSAGE_ID_MAX)] | None = None
    name = "search"
    aliases = ("find",)
    usage = "QUERY [before ID]"
    summary = f"Find messages, newest first ({SEARCH_PAGE} at a time): words, \"a phrase\", -word, in:#room, from:nick."
    details = (
        "after:DATE and before:DATE narrow it in time (2026-11-24, 2026-11-24T07:30; UTC unless it says).",
        "A word of 3 letters or more also finds longer words it begins; case and accents do not matter.",
        "before ID (the last two words) shows the results older than message ID: the next page.",
        "/history ROOM around ID opens a room at a result (/history @NICK around ID a private one).",
    )
    tail = "query"
    tail_required = True

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        args = super().arguments(rest)
        head, _, last = args["query"].rstrip(" ").rpartition(" ")
        query, _, word = head.rstrip(" ").rpartition(" ")
        if word.lower() == "before" and last.isdigit() and query.strip():
            args["query"], args["before"] = query, last
        return args


class Ping(Command):
    verb: Literal["ping"] = "ping"
    token: Annotated[str, AfterValidator(sanitize)] | None = None
    name = "ping"
    usage = "[TOKEN]"
    summary = "The server answers pong TOKEN once everything you sent before it has been handled."
    needs_nick = False
    tail = "token"


# ------------------------------------------------------------------------------------------------- accounts


class Register(Command):
    verb: Literal["register"] = "register"
    password: SecretStr  # never shown: its repr is stars
    name = "register"
    usage = "PASSWORD"
    summary = "Register your nickname as an account with PASSWORD (at least 8 characters); you are logged in."
    details = (
        "Nobody else can then use your nickname. Next time: /login NICK PASSWORD, or type NICK then the password.",
        "Logged in, you keep private history (/history @NICK) and get private messages sent while you were away.",
    )
    tail = "password"
    tail_required = True


class Login(Command):
    verb: Literal["login"] = "login"
    nick: NickName
    password: SecretStr
    take_nick: bool = True  # False: an IRC client's SASL before its NICK (no grammar gives it: codecs set it)
    name = "login"
    aliases = ("identify",)
    usage = "NICK PASSWORD"
    summary = "Log in to the account NICK; you take its nickname (works as the first line, too)."
    details = ("Too many wrong passwords for one account, or from one address, and you must wait a little.",)
    needs_nick = False
    words = ("nick",)
    required = 1
    tail = "password"
    tail_required = True


class Logout(Command):
    verb: Literal["logout"] = "logout"
    name = "logout"
    summary = "Log out of your account; you stay connected, under a guest nickname."


class Password(Command):
    verb: Literal["password"] = "password"
    password: SecretStr
    name = "password"
    usage = "NEW"
    summary = "Change the password of the account you are logged in to."
    tail = "password"
    tail_required = True


class Whois(Command):
    verb: Literal["whois"] = "whois"
    nick: NickName
    name = "whois"
    usage = "NICK"
    summary = "Whether NICK is online and registered (since when), how long idle, and the rooms you share."
    words = ("nick",)
    required = 1


WHOWAS_MAX = 10  # entries one /whowas lists


class Whowas(Command):
    verb: Literal["whowas"] = "whowas"
    nick: NickName
    count: Annotated[int, Field(ge=1, le=WHOWAS_MAX)] | None = None
    name = "whowas"
    usage = "NICK [COUNT]"
    summary = "Who used NICK lately and has gone (their user name and real name), the latest first."
    words = ("nick", "count")
    required = 1


class Online(Command):
    verb: Literal["online"] = "online"
    name = "online"
    summary = "How many people are online (and the most there were since the server started), in how many rooms."
    needs_nick = False


class Tagmsg(Command):
    verb: Literal["tagmsg"] = "tagmsg"
    target: str
    client_tags: dict[str, str]
    name = "tagmsg"
    usage = "NICK|#ROOM"
    summary = "IRCv3's TAGMSG: client-only tags without text (IRC clients' typing notices); nothing to type here."
    words = ("target",)
    required = 1

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        return {**super().arguments(rest), "client_tags": {}}

    def model_post_init(self, context: Any) -> None:
        (check_room if self.target.startswith("#") else check_nick)(self.target)


class Time(Command):
    verb: Literal["time"] = "time"
    name = "time"
    summary = "The server's date and time (UTC)."


# ------------------------------------------------------------------------------------------ server operators


class Oper(Command):
    verb: Literal["oper"] = "oper"
    account: NickName
    password: SecretStr
    name = "oper"
    usage = "ACCOUNT PASSWORD"
    summary = "Become a server operator with the name and password of an admin account (chat users admin)."
    details = (
        "You keep your nickname (and your own account, if you are logged in); you get the admin's powers: "
        "/kill, /wallops, and every room's moderation. Logged in to an admin account, you have them already.",
        "Wrong passwords count as failed logins to that account.",
    )
    words = ("account",)
    required = 1
    tail = "password"
    tail_required = True


class Kill(Command):
    verb: Literal["kill"] = "kill"
    nick: NickName
    reason: Text | None = None
    name = "kill"
    usage = "NICK [REASON]"
    summary = "Disconnect NICK from the server, telling them and their rooms REASON (server operators only)."
    words = ("nick",)
    required = 1
    tail = "reason"


class Wallops(Command):
    verb: Literal["wallops"] = "wallops"
    text: Text
    name = "wallops"
    usage = "TEXT"
    summary = "Send TEXT to everyone with user mode +w (server operators only; not stored)."
    tail = "text"
    tail_required = True


class Umode(Command):
    verb: Literal["umode"] = "umode"
    modes: Annotated[str, Field(pattern=r"^[+-][+\-ow]*$")] | None = None
    name = "umode"
    usage = "[+w|-w|-o]"
    summary = "Show your user modes, or change them: +w receives /wallops, -o gives up operator powers got by /oper."
    words = ("modes",)


# ------------------------------------------------------------------------------------------ room moderation


class _RoomAndNick(Command):
    """The shape of /op, /deop, /ban and /unban: a room, then a nick."""

    room: RoomName
    nick: NickName
    usage = "ROOM NICK"
    words = ("room", "nick")
    required = 2


class Op(_RoomAndNick):
    verb: Literal["op"] = "op"
    name = "op"
    summary = "Make NICK (logged in) an op of ROOM: ops kick, ban, invite and change the room's settings."
    details = ("Only the room's owner, its ops and server admins may. Ops are kept by account, across restarts.",)


class Deop(_RoomAndNick):
    verb: Literal["deop"] = "deop"
    name = "deop"
    summary = "Take ops of ROOM from NICK (never from its owner)."


class Ban(_RoomAndNick):
    verb: Literal["ban"] = "ban"
    name = "ban"
    summary = "Ban NICK from ROOM (the account, or a guest's nickname), and put them out if they are in it."


class Unban(_RoomAndNick):
    verb: Literal["unban"] = "unban"
    name = "unban"
    summary = "Lift the ban on NICK in ROOM."


class Kick(Command):
    verb: Literal["kick"] = "kick"
    room: RoomName
    nick: NickName
    reason: Text | None = None
    name = "kick"
    usage = "ROOM NICK [REASON]"
    summary = "Put NICK out of ROOM, telling the room REASON (they may come back unless banned)."
    words = ("room", "nick")
    required = 2
    tail = "reason"


class Invite(Command):
    verb: Literal["invite"] = "invite"
    nick: NickName
    room: RoomName
    name = "invite"
    usage = "NICK ROOM"
    summary = "Invite NICK (online) to ROOM: they may join it although it is invite-only or has a key."
    details = ("A logged-in NICK stays invited (the room's invite list); a guest's invite admits them once.",)
    words = ("nick", "room")
    required = 2


class Mode(Command):
    verb: Literal["mode"] = "mode"
    room: RoomName
    modes: Annotated[str, Field(pattern=r"^[+-][+\-a-zA-Z]*$")] | None = None
    args: tuple[Annotated[str, Field(max_length=WORD_MAX)], ...] = ()  # a key's length: `changes` checks it
    name = "mode"
    usage = "ROOM [+|-MODES [WORDS]]"
    summary = "Show ROOM's settings, or change them: /mode dev +i, /mode dev +k KEY, /mode dev +o bob."
    details = (
        "+i invite-only; +k KEY a password to join; +l N at most N members; +t only ops set the topic; +m moderated "
        "(ops and voiced speak); +s secret (hidden from outsiders); +n no messages from outside (on: -n lets "
        "outsiders send).",
        "+o NICK op, +v NICK voice, +b NICK ban (- takes each away; -k and -l need no word). Several at once: +im.",
        "+b, +e (ban exception) and +I (invite exception) also take a mask nick!user@host with * and ?: +b ba*, "
        "+e *!bob@*.",
        "Changes need the room's ops; anyone may look (the key and the ban list are shown to ops only).",
    )
    words = ("room", "modes")
    required = 1
    tail = "args"

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        args = super().arguments(rest)
        if "modes" in args and args["modes"][:1] not in ("+", "-"):
            raise ChatError(ErrorCode.BAD_ARGUMENT, f"Modes start with + or -, as in /mode {args['room']} +i. "
                            f"Usage: {cls.syntax()}")
        if "args" in args:
            args["args"] = tuple(args["args"].split())
        return args

    def model_post_init(self, context: Any) -> None:
        self.changes()  # raises ChatError(bad_argument) for an unknown letter or a missing word

    def changes(self) -> list[tuple[str, str | None]]:
        """The changes asked for, in order: ("+o", "bob"), ("-k", None)..."""
        found: list[tuple[str, str | None]] = []
        words = list(self.args)
        sign = "+"
        for letter in self.modes or "":
            if letter in "+-":
                sign = letter
                continue
            takes_word = MODE_LETTERS.get(letter)
            if takes_word is None:
                raise ChatError(ErrorCode.BAD_ARGUMENT, f"There is no mode {letter} (known: "
                                f"{''.join(MODE_LETTERS)}). Usage: {self.syntax()}", command=self.name)
            word = None
            if takes_word and not (letter in UNSET_WITHOUT_WORD and sign == "-"):
                if not words:
                    raise ChatError(ErrorCode.BAD_ARGUMENT, f"{sign}{letter} needs a word after it. Usage: "
                                    f"{self.syntax()}", command=self.name)
                word = words.pop(0)
                if letter == "k" and len(word) > KEY_MAX:
                    raise ChatError(ErrorCode.BAD_ARGUMENT, f"A key has at most {KEY_MAX} characters. Usage: "
                                    f"{self.syntax()}", command=self.name)
                if letter == "l":
                    try:
                        word = str(check_member_limit(word))  # "007" is 7
                    except ChatError as e:
                        e.command = self.name
                        raise
            found.append((sign + letter, word))
        if words:
            raise ChatError(ErrorCode.BAD_ARGUMENT, f"Too many words for {self.modes}. Usage: {self.syntax()}",
                            command=self.name)
        return found


AnyCommand = Annotated[
    Union[  # noqa: UP007
        Say, Nick, Join, Leave, Msg, Me, Rooms, Who, Topic, History, Targets, Search,
        Register, Login, Logout, Password, Whois, Whowas, Away, Online, Time, Tagmsg,
        Oper, Kill, Wallops, Umode,
        Op, Deop, Kick, Ban, Unban, Invite, Mode,
        Help, Quit, Format, Ping,
    ],
    Field(discriminator="verb"),
]
COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(AnyCommand)
COMMAND_MODELS: tuple[type[Command], ...] = get_args(get_args(AnyCommand)[0])
VERBS: dict[str, type[Command]] = {
    verb: model for model in COMMAND_MODELS for verb in (model.name, *model.aliases)
}
# verbs whose line carries a password: such a line is never logged whole (see `loggable`)
SECRET_VERBS = frozenset(
    verb for verb, model in VERBS.items() if any(f.annotation is SecretStr for f in model.model_fields.values())
)


# the same for other doors' lines: IRC's OPER (a secret verb already), AUTHENTICATE (SASL PLAIN) and PASS
OTHER_SECRET_VERBS = frozenset({"authenticate", "pass"})


def loggable(line: str) -> str:
    """`line` as it may appear in a log: a line carrying a password keeps its verb only (an IRC line too:
    `OPER name password`, whatever its tags)."""
    words = line.split(" ", 2)
    first = words[1] if line.startswith("@") and len(words) > 1 else words[0]
    verb = first.removeprefix("/").lower()
    if verb in SECRET_VERBS or (not first.startswith("/") and verb in OTHER_SECRET_VERBS):
        return f"{'/' if first.startswith('/') else ''}{verb} [hidden]"
    return line

_validate_say = Say.__pydantic_validator__.validate_python


def parse_line(line: str) -> Command | None:
    """Parse one line from a client. Returns None for a blank line; raises ChatError for a bad one, naming the
    verb it refused in `command` (a plain line's verb is `say`; an unknown verb is named as typed)."""
    if not line.startswith("/") or line.startswith("//"):
        stripped = line.strip()
        if not stripped:
            return None
        if stripped.upper() == QUIT_WORD:
            return Quit()
        try:  # the model itself, not the union: plain lines are most lines (its validator, without __init__'s frame)
            return _validate_say({"text": line[1:] if line.startswith("//") else line})
        except ValidationError as e:
            error = _explain(Say, e)
            error.command = Say.name
            raise error from None
    verb, _, rest = line[1:].partition(" ")
    model = VERBS.get(verb.lower())
    if model is None:
        shown = sanitize(verb if len(verb) <= 30 else verb[:30] + "...")
        raise ChatError(ErrorCode.UNKNOWN_COMMAND, f"Unknown command /{shown}. /help lists the commands.",
                        command=shown.lower())
    try:
        data = model.arguments(rest)
    except ChatError as e:
        e.command = model.name
        raise
    return _validate(model, data)


def _validate(model: type[Command], data: dict[str, Any]) -> Command:
    data["verb"] = model.name
    try:
        return COMMAND_ADAPTER.validate_python(data)
    except ValidationError as e:
        error = _explain(model, e)
    except ChatError as e:  # a model's own check (Msg's target)
        error = e
    error.command = model.name
    raise error from None


def _explain(model: type[Command], error: ValidationError) -> ChatError:
    first = error.errors(include_url=False)[0]
    kind = first["type"]
    if kind in ErrorCode._value2member_map_:
        return ChatError(ErrorCode(kind), first["msg"])
    where = ".".join(str(p) for p in first["loc"] if p != model.name)
    return ChatError(ErrorCode.BAD_ARGUMENT, f"Bad {where or 'argument'}: {first['msg']}. Usage: {model.syntax()}")


def help_lines(command: str | None = None) -> list[str]:
    """The text of /help, or of /help COMMAND."""
    if command:
        model = VERBS.get(command.lstrip("/").lower())
        if model is None:
            raise ChatError(ErrorCode.UNKNOWN_COMMAND, f"There is no /{sanitize(command.lstrip('/'))} command.")
        lines = [f"{model.syntax()}  {model.summary}", *model.details]
        if model.aliases:
            lines.append("Also: " + ", ".join(f"/{a}" for a in model.aliases))
        return lines
    lines = ["Commands (a line without / is said in your current room; //text says /text):"]
    for model in COMMAND_MODELS:
        if model is not Say:
            lines.append(f"  {model.syntax():<36} {model.summary}")
    lines.append("/help COMMAND explains one command. Names are case-insensitive; the # of a room is optional.")
    return lines
