"""IRC lines as data: `parse` one received line (IRCv3 tags, prefix, verb, parameters), `line` to write one.
Pure; nothing here knows the chat."""

from __future__ import annotations

from dataclasses import dataclass, field

TAGS_MAX = 8191  # bytes of tags a client may send (IRCv3 message-tags), the leading @ and the space included
BODY_MAX = 512  # bytes of the rest, CR LF included (RFC 1459)
PARAMS_MAX = 15

_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPED = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


class MalformedLine(ValueError):
    """The line is not an IRC message (nothing but spaces, a prefix alone, tags alone)."""


@dataclass(slots=True)
class Message:
    verb: str  # upper case
    params: list[str]
    tags: dict[str, str] = field(default_factory=dict)
    source: str | None = None


def parse(raw: str) -> Message:
    """One line, without its CR LF. Raises MalformedLine for a line with no verb."""
    tags: dict[str, str] = {}
    rest = raw
    if rest.startswith("@"):
        head, _, rest = rest[1:].partition(" ")
        for item in head.split(";"):
            if not item:
                continue
            key, _, value = item.partition("=")
            tags[key] = unescape_tag(value)
        rest = rest.lstrip(" ")
    source = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    params: list[str] = []
    while rest:
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        word, _, rest = rest.partition(" ")
        params.append(word)
        rest = rest.lstrip(" ")
    if not params or not params[0]:
        raise MalformedLine(raw)
    verb = params.pop(0).upper()
    return Message(verb, params, tags, source)


def unescape_tag(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            i += 1
            if i < len(value):
                out.append(_ESCAPES.get(value[i], value[i]))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def escape_tag(value: str) -> str:
    return value.translate(_ESCAPED)


def line(source: str | None, verb: str, *params: str, tags: str = "") -> str:
    """One line to send, CR LF included. The last parameter is always sent as a trailing one (`:` first) when
    it may need it; `tags` is the already-formatted `@a=b;c` part or empty."""
    parts = []
    if tags:
        parts.append(tags)
    if source:
        parts.append(":" + source)
    parts.append(verb)
    if params:
        *middle, last = params
        parts.extend(middle)
        parts.append(":" + last if (not last or " " in last or last.startswith(":")) else last)
    return " ".join(parts) + "\r\n"


def format_tags(tags: dict[str, str | None]) -> str:
    """`@k=v;k2` from the tags given, in order; "" when there are none."""
    if not tags:
        return ""
    return "@" + ";".join(k if v is None or v == "" else f"{k}={escape_tag(v)}" for k, v in tags.items())
