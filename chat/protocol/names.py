"""Rules for nicknames and room names, and their case-insensitive keys.

Nicknames: 1-20 characters, an ASCII letter or `_` first, then letters, digits, `_` or `-`.
Room names: 1-32 characters, an ASCII letter or digit first, then letters, digits, `_`, `-` or `.`;
a leading `#` is optional when a room is named and is not part of the name.
Both are unique regardless of case: `Alice` and `alice` are the same nick.
"""

from __future__ import annotations

import re

from chat.protocol.errors import ChatError, ErrorCode

NICK_MAX = 20
ROOM_MAX = 32
KEY_MAX = 64  # characters of a room key (a password to join it)
MEMBER_LIMIT_MAX = 1_000_000  # the largest member limit (+l) a room may have
TOPIC_MAX = 390  # characters; IRC servers' usual TOPICLEN, and it keeps a room list line readable
ROOMS_PAGE = 100  # rooms one /rooms answer lists, busiest first: the reply stays small however many exist
NICK_RULE = f"1-{NICK_MAX} characters: a letter or _ first, then letters, digits, _ or -"
ROOM_RULE = f"1-{ROOM_MAX} characters: a letter or digit first, then letters, digits, _, - or ."

_GUEST_RE = re.compile(r"guest\d+", re.IGNORECASE)  # the nicks /logout gives: they can never be registered
_NICK_RE = re.compile(rf"[A-Za-z_][A-Za-z0-9_\-]{{0,{NICK_MAX - 1}}}")
_ROOM_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{ROOM_MAX - 1}}}")


def name_key(name: str) -> str:
    """The key under which a nick or room is unique (names are ASCII, so lower() is a full case fold)."""
    return name.lower()


def is_valid_nick(nick: str) -> bool:
    return _NICK_RE.fullmatch(nick) is not None


def is_guest_nick(nick: str) -> bool:
    return _GUEST_RE.fullmatch(nick) is not None


def check_nick(nick: str) -> str:
    if not is_valid_nick(nick):
        shown = nick if len(nick) <= 40 else nick[:40] + "..."
        raise ChatError(ErrorCode.INVALID_NICK, f"{shown!r} is not a valid nickname ({NICK_RULE}).")
    return nick


def strip_room_prefix(room: str) -> str:
    return room[1:] if room.startswith("#") else room


def check_room(room: str) -> str:
    """Validate a room name given with or without its `#`; return it without."""
    name = strip_room_prefix(room)
    if _ROOM_RE.fullmatch(name) is None:
        shown = room if len(room) <= 40 else room[:40] + "..."
        raise ChatError(ErrorCode.INVALID_ROOM, f"{shown!r} is not a valid room name ({ROOM_RULE}).")
    return name


def check_member_limit(word: str) -> int:
    """A room's member limit (+l N) as given: a whole number from 1 to MEMBER_LIMIT_MAX."""
    if not (word.isascii() and word.isdigit()) or not 1 <= int(word) <= MEMBER_LIMIT_MAX:
        shown = word if len(word) <= 20 else word[:20] + "..."
        raise ChatError(ErrorCode.BAD_ARGUMENT, f"A member limit is a whole number from 1 to {MEMBER_LIMIT_MAX:,}, "
                        f"not {shown!r}.")
    return int(word)
