"""What the client receives: each server line decoded into a validated event, or into `Garbage`.

The server's JSON shapes are in `chat.protocol.render`. Here every shape is a pydantic model that ignores
fields it does not know (a newer server may add some) and refuses wrong types, so the rest of the client
never sees a malformed event: a line that is not a well-formed event becomes `Garbage`, which is shown and
otherwise ignored. An event type this client does not know becomes `Unknown`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator


class ServerEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Hello(ServerEvent):
    type: Literal["hello"]
    server: str
    version: str


class Notice(ServerEvent):
    type: Literal["notice"]
    text: str


class Welcome(ServerEvent):
    type: Literal["welcome"]
    nick: str


class NickChanged(ServerEvent):
    type: Literal["nick"]
    old: str
    new: str
    time: datetime


class Join(ServerEvent):
    type: Literal["join"]
    room: str
    nick: str
    time: datetime


class Joined(ServerEvent):
    type: Literal["joined"]
    room: str
    members: list[str]
    topic: str | None = None
    time: datetime


class Part(ServerEvent):
    type: Literal["part"]
    room: str
    nick: str
    reason: str | None = None
    time: datetime


class Quit(ServerEvent):
    type: Literal["quit"]
    nick: str
    reason: str | None = None
    time: datetime


class Message(ServerEvent):
    """A room message, a /me action or a private message; `history` marks backlog and /history pages."""

    type: Literal["message", "action", "private"]
    id: int
    time: datetime
    nick: str
    text: str
    room: str | None = None
    to: str | None = None
    history: bool = False

    @model_validator(mode="after")
    def _has_a_destination(self) -> Message:
        if self.type == "private" and self.to is None:
            raise ValueError("a private message needs 'to'")
        if self.type != "private" and self.room is None:
            raise ValueError(f"a {self.type} needs 'room'")
        return self

    @property
    def is_private(self) -> bool:
        return self.type == "private"


class HistoryEnd(ServerEvent):
    type: Literal["history_end"]
    room: str
    count: int
    more: bool
    reason: Literal["backlog", "page"] = "page"


class Topic(ServerEvent):
    type: Literal["topic"]
    room: str
    topic: str | None = None
    nick: str | None = None
    time: datetime | None = None
    change: bool = False


class RoomInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    room: str
    members: int
    topic: str | None = None


class Rooms(ServerEvent):
    type: Literal["rooms"]
    rooms: list[RoomInfo]


class Who(ServerEvent):
    type: Literal["who"]
    room: str
    members: list[str]


class Help(ServerEvent):
    type: Literal["help"]
    command: str | None = None
    lines: list[str]


class Pong(ServerEvent):
    type: Literal["pong"]
    token: str | None = None


class FormatChanged(ServerEvent):
    type: Literal["format"]
    format: str


class Error(ServerEvent):
    type: Literal["error"]
    code: str
    message: str
    command: str | None = None


class Bye(ServerEvent):
    type: Literal["bye"]
    reason: str
    code: str | None = None


AnyEvent = Annotated[
    Union[  # noqa: UP007 - a discriminated union needs Union[...]
        Hello, Notice, Welcome, NickChanged, Join, Joined, Part, Quit, Message, HistoryEnd, Topic, Rooms, Who,
        Help, Pong, FormatChanged, Error, Bye,
    ],
    Field(discriminator="type"),
]
_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)
KNOWN_TYPES = frozenset(
    t for model in (Hello, Notice, Welcome, NickChanged, Join, Joined, Part, Quit, Message, HistoryEnd, Topic,
                    Rooms, Who, Help, Pong, FormatChanged, Error, Bye)
    for t in model.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
)


@dataclass(frozen=True, slots=True)
class TextLine:
    """A line in text format: the greeting, sent before `/format json` takes effect."""

    text: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """A well-formed event of a type this client does not know (from a newer server): ignored."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Garbage:
    """A line that is not a valid event. Shown to the user as a warning; never acted upon."""

    line: str
    why: str


Incoming = ServerEvent | TextLine | Unknown | Garbage
TOO_LONG = b"\x00too long"  # what the connection reads in place of a line too long to keep


def decode_line(raw: bytes) -> Incoming:
    """Decode one line from the server (without its newline). Never raises."""
    if raw == TOO_LONG:
        return Garbage("", "a line too long to be an event was dropped")
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    if not line.startswith("{"):
        return TextLine(line)
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as e:
        return Garbage(line, f"not JSON ({e})")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return Garbage(line, "not an event (no type)")
    if data["type"] not in KNOWN_TYPES:
        return Unknown(data["type"], data)
    try:
        return _EVENT.validate_python(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "event"
        return Garbage(line, f"bad {data['type']} event: {where}: {first['msg']}")
