"""What the client receives: each server line decoded into one of the server's own events, or into `Garbage`.

There is one definition of each event: its class in `chat.protocol.events` (the fields) and its rendering in
`chat.protocol.render` (the JSON shape). The decoder is derived from both: the JSON `type` of each event class
is learned by rendering an example of it, and an event's fields are validated by pydantic against the class
itself, so a field or an event added to the server is known here without a second list. A test renders every
event in both formats and decodes it back (tests/test_client_events.py).

Nothing the server sends can make the rest of the client see a malformed event: a line that is not a
well-formed event becomes `Garbage` (shown, otherwise ignored), an event type this client does not know
becomes `Unknown` (ignored), and fields it does not know are ignored (a newer server may add some).

A history page (a backlog, or the answer to /history) arrives as one line per message and a `history_end`
line; the decoder gathers it back into the one `History` event the server rendered. A private history page (the
answer to /history @NICK, or the messages that waited for a login) is gathered the same way, up to its
`private_history_end`, into one `PrivateHistory`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, Literal, Union, get_args

from pydantic import TypeAdapter, ValidationError

from chat.protocol.commands import HISTORY_MAX
from chat.protocol.errors import ErrorCode
from chat.protocol.events import (
    Bye,
    ChatMessage,
    Error,
    Event,
    History,
    MessageKind,
    PrivateHistory,
    SearchResults,
    Target,
    Targets,
)
from chat.protocol.render import render_json

PAGE_LIMIT = 4 * HISTORY_MAX  # history messages held while waiting for their `history_end`, all rooms together


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


Incoming = Event | TextLine | Unknown | Garbage
TOO_LONG = b"\x00too long"  # what the connection reads in place of a line too long to keep


# ------------------------------------------------------------------------------- derived from the server


def _placeholders(hint: Any) -> list[Any]:
    """Values of a field's type good enough to render an event with: every member of an enum (a message's
    kind decides its JSON type), None for an optional field, an empty value otherwise."""
    if isinstance(hint, type) and issubclass(hint, Enum):
        return list(hint)
    origin = typing.get_origin(hint)
    if origin is Literal:
        return [get_args(hint)[0]]
    if origin in (Union, types.UnionType):
        return [None] if type(None) in get_args(hint) else _placeholders(get_args(hint)[0])
    if origin is list:
        return [[]]
    return [hint()]  # str, int, float, bool


def _examples(cls: type[Any]) -> Iterator[Event]:
    hints = typing.get_type_hints(cls)
    fields = [_placeholders(hints[f.name]) for f in dataclasses.fields(cls)]
    for values in itertools.product(*fields):
        yield cls(*values)


@cache
def event_types() -> dict[str, type[Any]]:
    """Each JSON `type` the server sends, and the event class it comes from, learned by rendering examples."""
    found: dict[str, type[Any]] = {}
    for cls in get_args(Event):
        for example in _examples(cls):
            for line in render_json(example).split("\n")[:-1]:
                found[json.loads(line)["type"]] = cls
    return found


KNOWN_TYPES = frozenset(event_types())
_CODES = frozenset(code.value for code in ErrorCode)
_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


# ------------------------------------------------------------------------------------------- decoding


class Decoder:
    """Decodes the lines of one connection, in order (a history page spans several lines)."""

    def __init__(self, page_limit: int = PAGE_LIMIT) -> None:
        self.page_limit = page_limit
        self._pages: dict[str, list[ChatMessage]] = {}  # room -> history messages before their history_end
        self._found: list[ChatMessage] = []  # search results before their search_end
        self._private: list[ChatMessage] = []  # private history messages before their private_history_end
        self._held = 0

    def decode(self, raw: bytes) -> Incoming | None:
        """Decode one line from the server (without its newline). None: a line of a history page, which comes
        whole with its last line. Never raises."""
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
        kind = data["type"]
        cls = event_types().get(kind)
        if cls is None:
            return Unknown(kind, data)
        try:
            if cls is ChatMessage:
                message = _message(data)
                if data.get("search") is True:
                    return self._hold_result(message)
                return self._hold(message) if data.get("history") is True else message
            if cls is History:
                return self._page(data)
            if cls is SearchResults:
                found, self._found = self._found, []
                self._held -= len(found)
                fields = {k: v for k, v in data.items() if k not in ("type", "count")}
                results: SearchResults = _adapter(SearchResults).validate_python({**fields, "messages": found})
                return results
            if cls is PrivateHistory:
                return self._private_page(data)
            if cls is Targets and isinstance(data.get("targets"), list):  # each target carries a time of its own
                data = {**data, "targets": [_with_times(t, Target) if isinstance(t, dict) else t
                                            for t in data["targets"]]}
            if cls in (Error, Bye) and isinstance(data.get("code"), str) and data["code"] not in _CODES:
                return Garbage(line, f"an error this client does not know ({data['code']}): {data.get('message')}")
            return _adapter(cls).validate_python(_with_times(data, cls))
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            return Garbage(line, f"bad {kind} event: {where}: {first['msg']}")
        except ValueError as e:
            return Garbage(line, f"bad {kind} event: {e}")

    def _hold(self, message: ChatMessage) -> Incoming | None:
        if self._held >= self.page_limit:
            self._drop_pages()
            return Garbage("", f"a history page longer than {self.page_limit} messages was dropped")
        if message.room is not None:
            self._pages.setdefault(message.room, []).append(message)
        elif message.private:
            self._private.append(message)
        else:
            return Garbage("", "a history message without a room")
        self._held += 1
        return None

    def _hold_result(self, message: ChatMessage) -> Incoming | None:
        if self._held >= self.page_limit:
            self._drop_pages()
            return Garbage("", f"a search page longer than {self.page_limit} messages was dropped")
        self._found.append(message)
        self._held += 1
        return None

    def _drop_pages(self) -> None:
        self._pages.clear()
        self._found.clear()
        self._private.clear()
        self._held = 0

    def _private_page(self, data: dict[str, Any]) -> PrivateHistory:
        messages, self._private = self._private, []
        self._held -= len(messages)
        fields = {k: data.get(k) for k in ("nick", "more", "reason", "around", "newer") if k in data}
        page: PrivateHistory = _adapter(PrivateHistory).validate_python({**fields, "messages": messages})
        return page

    def _page(self, data: dict[str, Any]) -> History:
        messages = self._pages.pop(data["room"], []) if isinstance(data.get("room"), str) else []
        self._held -= len(messages)
        fields = {"room": data.get("room"), "messages": messages, "more": data.get("more")}
        fields |= {k: data[k] for k in ("reason", "around", "newer") if k in data}
        page: History = _adapter(History).validate_python(fields)
        return page


# a `message` or `private` with "notice": true is a notice (chat.protocol.render.message_json)
_NOTICE_KINDS = {MessageKind.MESSAGE.value: MessageKind.NOTICE.value,
                 MessageKind.PRIVATE.value: MessageKind.PRIVATE_NOTICE.value}


def _message(data: dict[str, Any]) -> ChatMessage:
    fields = {k: v for k, v in _with_times(data, ChatMessage).items()
              if k not in ("type", "state", "history", "search", "notice")}
    kind = _NOTICE_KINDS.get(data["type"], data["type"]) if data.get("notice") is True else data["type"]
    message: ChatMessage = _adapter(ChatMessage).validate_python({**fields, "kind": kind})
    if message.private and message.to is None:
        raise ValueError("a private message needs 'to'")
    if not message.private and message.room is None:
        raise ValueError(f"a {message.kind.value} needs 'room'")
    return message


_TIME_FIELDS: dict[type[Any], frozenset[str]] = {}


def _time_fields(cls: type[Any]) -> frozenset[str]:
    """The fields of an event class that may hold a time (a float: `time`, `registered_at`...); those the server
    sends as strings are ISO-8601 times."""
    if cls not in _TIME_FIELDS:
        hints = typing.get_type_hints(cls)
        _TIME_FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls) if hints[f.name] in (float, float | None))
    return _TIME_FIELDS[cls]


def _with_times(data: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
    """The server writes times as ISO-8601 UTC (`render.iso_time`); the events hold seconds since the epoch."""
    found = {name: data[name] for name in _time_fields(cls) if isinstance(data.get(name), str)}
    if not found:
        return data
    converted = dict(data)
    for name, when in found.items():
        try:
            parsed = datetime.fromisoformat(when)
        except ValueError:
            raise ValueError(f"{name}: not an ISO-8601 time: {when[:40]!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{name}: no time zone: {when[:40]!r}")
        converted[name] = parsed.timestamp()
    return converted
