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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.names import ROOMS_PAGE, TOPIC_MAX, check_nick, check_room
from chat.protocol.text import sanitize
from chat.search.query import parse_search

HISTORY_MAX = 500
SEARCH_PAGE = 20  # results one /search answers with
QUIT_WORD = "!DISCONNECT"  # the classic tutorial's way out, a plain line rather than a command
MESSAGE_ID_MAX = (1 << 63) - 1  # ids are 64-bit in the database; anything larger cannot name a message


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


class Nick(Command):
    verb: Literal["nick"] = "nick"
    nick: NickName
    name = "nick"
    usage = "NAME"
    summary = "Choose your nickname, or change it."
    needs_nick = False
    words = ("nick",)
    required = 1


class Join(Command):
    verb: Literal["join"] = "join"
    room: RoomName
    name = "join"
    aliases = ("j",)
    usage = "ROOM"
    summary = "Join ROOM (created if new) and make it your current room; you get its recent history."
    details = ("Already in ROOM? It just becomes your current room. The # before a room name is optional.",)
    words = ("room",)
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
    name = "who"
    aliases = ("names",)
    usage = "[ROOM]"
    summary = "List the members of ROOM (default: your current room)."
    words = ("room",)


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
    count: Annotated[int, Field(ge=1, le=HISTORY_MAX)] = 20
    before: Annotated[int, Field(ge=1, le=MESSAGE_ID_MAX)] | None = None
    after: Annotated[int, Field(ge=0, le=MESSAGE_ID_MAX)] | None = None
    name = "history"
    usage = "[ROOM] [N] [before|after ID]"
    summary = f"Show N (default 20, at most {HISTORY_MAX}) older messages of a room; again to page back."
    details = (
        "Each /history continues from the oldest message you were shown in that room.",
        "before ID / after ID choose the place instead (message ids are in JSON events).",
    )

    @classmethod
    def arguments(cls, rest: str) -> dict[str, Any]:
        words = rest.split()
        args: dict[str, Any] = {}
        if words and not words[0].isdigit() and words[0].lower() not in ("before", "after"):
            args["room"] = words.pop(0)
        if words and words[0].isdigit():
            args["count"] = words.pop(0)
        if len(words) == 2 and words[0].lower() in ("before", "after"):
            args[words[0].lower()] = words[1]
            words = []
        if words:
            raise ChatError(ErrorCode.BAD_ARGUMENT, f"Usage: {cls.syntax()}")
        return args


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
        "/history ROOM around ID opens a room at a result.",
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


AnyCommand = Annotated[
    Union[Say, Nick, Join, Leave, Msg, Me, Rooms, Who, Topic, History, Search, Help, Quit, Format,  # noqa: UP007
          Ping],
    Field(discriminator="verb"),
]
COMMAND_ADAPTER: TypeAdapter[AnyCommand] = TypeAdapter(AnyCommand)
COMMAND_MODELS: tuple[type[Command], ...] = get_args(get_args(AnyCommand)[0])
VERBS: dict[str, type[Command]] = {
    verb: model for model in COMMAND_MODELS for verb in (model.name, *model.aliases)
}

def parse_line(line: str) -> Command | None:
    """Parse one line from a client. Returns None for a blank line; raises ChatError for a bad one, naming the
    verb it refused in `command` (a plain line's verb is `say`; an unknown verb is named as typed)."""
    if not line.startswith("/") or line.startswith("//"):
        if not line.strip():
            return None
        if line.strip().upper() == QUIT_WORD:
            return Quit()
        try:  # the model itself, not the union: plain lines are most lines
            return Say(text=line[1:] if line.startswith("//") else line)
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
