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
    # accounts
    NOT_LOGGED_IN = "not_logged_in"  # that needs an account: /register or /login first
    LOGGED_IN = "logged_in"  # you are logged in already (or: your nickname is your account's)
    ALREADY_LOGGED_IN = "already_logged_in"  # the account is in use on another connection
    NO_SUCH_ACCOUNT = "no_such_account"  # nobody registered that nickname
    BAD_PASSWORD = "bad_password"  # wrong password
    WEAK_PASSWORD = "weak_password"  # too short (or too long)
    LOGIN_THROTTLED = "login_throttled"  # too many failed logins for that account or from your address: wait
    REGISTER_THROTTLED = "register_throttled"  # too many accounts registered from your address lately: wait
    NICK_REGISTERED = "nick_registered"  # someone registered that nickname: it is theirs
    NICK_RESERVED = "nick_reserved"  # Guest nicknames cannot be registered
    SERVER_BUSY = "server_busy"  # too many password checks waiting: try again in a moment
    ACCOUNT_UNAVAILABLE = "account_unavailable"  # the server could not read or write accounts just now
    MAILBOX_FULL = "mailbox_full"  # too many private messages wait for that offline user
    # room moderation
    NOT_OP = "not_op"  # that needs the room's ops (or a server admin)
    PROTECTED = "protected"  # the room's owner and server admins cannot be kicked, banned or deopped by ops
    NEEDS_ACCOUNT = "needs_account"  # that needs the other person to be logged in (kept for older clients)
    ALREADY_IN_ROOM = "already_in_room"  # the one you invite is in the room already
    BANNED = "banned"  # you are banned from that room
    INVITE_ONLY = "invite_only"  # that room is invite-only and you are not invited
    BAD_KEY = "bad_key"  # that room has a key (a password to join) and you gave none, or a wrong one
    ROOM_FULL = "room_full"  # that room has as many members as its limit (+l) lets in
    MODERATED = "moderated"  # only ops and voiced members may speak in that room
    LIST_FULL = "list_full"  # that room's list of such masks (bans, ban or invite exceptions) is full
    # server operators (admin accounts' powers: /oper, IRC's OPER)
    NOT_OPERATOR = "not_operator"  # that needs a server operator (/kill, /wallops)
    NO_SUCH_OPERATOR = "no_such_operator"  # /oper NAME: NAME is not an admin account
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
    KILLED = "killed"  # a server operator's /kill
    PING_TIMEOUT = "ping_timeout"  # an IRC client answered no PING (--ping-timeout)
    NODE_LOST = "node_lost"  # clustered: the other nodes gave this node up (out of touch too long); reconnect


class ChatError(Exception):
    """A refusal the user should see: one line with a stable code and a clear sentence.

    `command` is the verb refused (set by the parser once it knows it, so even a malformed command names
    itself); `subject` is the nick or room the refusal is about, for codecs whose replies carry it (IRC's
    `433 * alice :Nickname is already in use`); `room` is the room a refusal about a nick concerns (IRC's
    `441 me bob #dev :They aren't on that channel`)."""

    def __init__(self, code: ErrorCode, message: str, *, command: str | None = None,
                 subject: str | None = None, room: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.command = command
        self.subject = subject
        self.room = room

    def __repr__(self) -> str:
        return f"ChatError({self.code.value!r}, {self.message!r})"
