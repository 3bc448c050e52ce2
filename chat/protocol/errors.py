"""One error type with stable codes, raised anywhere and rendered in one place."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes. Never renumber or rename: clients match on them."""

    # input framing
    LINE_TOO_LONG = "line_too_long"
    INVALID_UTF8 = "invalid_utf8"
    # commands
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGUMENT = "bad_argument"
    NOT_REGISTERED = "not_registered"
    # names
    INVALID_NICK = "invalid_nick"
    NICK_TAKEN = "nick_taken"
    INVALID_ROOM = "invalid_room"
    NO_SUCH_NICK = "no_such_nick"
    NO_SUCH_ROOM = "no_such_room"
    NOT_IN_ROOM = "not_in_room"
    NO_CURRENT_ROOM = "no_current_room"
    TOO_MANY_ROOMS = "too_many_rooms"  # in the most rooms one may be in, or created too many lately
    # storage
    NOT_DELIVERED = "not_delivered"
    HISTORY_UNAVAILABLE = "history_unavailable"
    SERVER_ERROR = "server_error"  # a bug on our side, logged with its context
    # search
    BAD_SEARCH = "bad_search"  # the query does not parse, or asks for nothing
    SEARCH_TIMEOUT = "search_timeout"  # the query ran past its time budget: narrow it
    # reasons a connection is closed by the server (sent in the `bye` event)
    SERVER_FULL = "server_full"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    REGISTRATION_TIMEOUT = "registration_timeout"
    FLOOD = "flood"
    SENDQ_EXCEEDED = "sendq_exceeded"
    SERVER_SHUTDOWN = "server_shutdown"


class ChatError(Exception):
    """A refusal the user should see: one line with a stable code and a clear sentence.

    `command` is the verb refused (set by the parser once it knows it, so even a malformed command names
    itself); `subject` is the nick or room the refusal is about, for codecs whose replies carry it (IRC's
    `433 * alice :Nickname is already in use`)."""

    def __init__(self, code: ErrorCode, message: str, *, command: str | None = None,
                 subject: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.command = command
        self.subject = subject

    def __repr__(self) -> str:
        return f"ChatError({self.code.value!r}, {self.message!r})"
