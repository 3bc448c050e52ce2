"""Where IRC and the native protocol disagree, decided once (docs/IRC.md says the same in words).

| IRC                          | here                                                                    |
|------------------------------|-------------------------------------------------------------------------|
| channel `#dev`               | room `dev`: CHANTYPES=#, the `#` is not part of the name                |
| nick `[a]\\` etc.             | refused (432): nicks follow the native rule, NICKLEN=20                 |
| CASEMAPPING=rfc1459          | CASEMAPPING=ascii: names are ASCII, `lower()` is the whole case fold    |
| a line of 512 bytes + tags   | a received line may be 512 bytes (CR LF included) plus 4096 of tags, or|
|                              | it is refused (417); a longer message from a native client is sent as  |
|                              | several PRIVMSG lines                                                   |
| NOTICE                       | a message of its own kind (stored, in history), relayed as a NOTICE    |
| PASS (server password)       | the IRC door's password (`--irc-password`) when one is set, else       |
|                              | ignored; either way accounts log in with SASL PLAIN, never with PASS   |
| OPER name password           | an admin account's name and password: its powers for the connection    |
"""

from __future__ import annotations

from chat import __version__
from chat.protocol.commands import AWAY_MAX, HISTORY_MAX
from chat.protocol.errors import ErrorCode
from chat.protocol.names import NICK_MAX, ROOM_MAX, TOPIC_MAX, check_room

CHANNEL_PREFIX = "#"
CASEMAPPING = "ascii"
TAGS_MAX = 4096  # bytes of tags a client may send, the @ and the space after them included (IRCv3: 4094 + 2)
BODY_MAX = 510  # bytes of the rest of a line, CR LF excluded (RFC 1459's 512 with them)
TEXT_CHUNK = 400  # bytes of message text in one PRIVMSG line we send (the prefix and tags come on top)
KICK_MAX = TOPIC_MAX
CHATHISTORY_MAX = min(HISTORY_MAX, 100)  # messages one CHATHISTORY answer holds
SERVER_INFO = "chat"  # the server's description: WHOIS's 312 and LINKS's 364 (`chat serve --server-info`)


def channel(room: str) -> str:
    """The IRC name of a room."""
    return CHANNEL_PREFIX + room


def room_of(target: str) -> str | None:
    """The room an IRC channel name stands for, or None when it is not one of ours (no #, bad characters)."""
    if not target.startswith(CHANNEL_PREFIX):
        return None
    try:
        return check_room(target)
    except Exception:
        return None


# the channel modes (cmd.MODE_LETTERS) by ISUPPORT's kinds: lists (b bans, I invite exceptions, e ban exceptions),
# a word always (k), a word to set (l), no word (imnst); o and v are PREFIX's
CHANMODES = "Ibe,k,l,imnst"
INVEX = "I"
EXCEPTS = "e"
LIST_MODES = {"b": "banlist", INVEX: "invexlist", EXCEPTS: "exceptlist"}  # a list mode alone (MODE #c +b): its list
def as_mask(entry: str) -> str:
    """A list entry as IRC shows it: a mask as it is, a nick as the mask it stands for (`bob!*@*`)."""
    return entry if "!" in entry else f"{entry}!*@*"


MODES_MAX = 4  # mode changes with a word in one MODE line (ISUPPORT MODES): the most a line we send carries


def isupport(network: str) -> list[str]:
    """RPL_ISUPPORT tokens: what this server really does."""
    return [
        f"NETWORK={network}", f"CASEMAPPING={CASEMAPPING}", f"CHANTYPES={CHANNEL_PREFIX}", "PREFIX=(ov)@+",
        f"CHANMODES={CHANMODES}", f"NICKLEN={NICK_MAX}", f"CHANNELLEN={ROOM_MAX + 1}", f"TOPICLEN={TOPIC_MAX}",
        f"KICKLEN={KICK_MAX}", f"AWAYLEN={AWAY_MAX}", f"MODES={MODES_MAX}", "UTF8ONLY", f"INVEX={INVEX}",
        f"EXCEPTS={EXCEPTS}", "TARGMAX=PRIVMSG:4,NOTICE:4,JOIN:10,PART:10", f"CHATHISTORY={CHATHISTORY_MAX}",
        "MSGREFTYPES=msgid",
    ]


# an error code -> the numeric an IRC client understands, and the words after the subject. None: a NOTICE.
NUMERICS: dict[ErrorCode, tuple[str, str] | None] = {
    ErrorCode.NICK_TAKEN: ("433", "Nickname is already in use"),
    ErrorCode.NICK_REGISTERED: ("433", "Nickname is registered to an account: log in with SASL"),
    ErrorCode.INVALID_NICK: ("432", "Erroneous nickname"),
    ErrorCode.NICK_RESERVED: ("432", "Erroneous nickname (Guest nicknames are the server's)"),
    ErrorCode.NOT_REGISTERED: ("451", "You have not registered"),
    ErrorCode.NO_SUCH_NICK: ("401", "No such nick/channel"),
    ErrorCode.NO_SUCH_ROOM: ("403", "No such channel"),
    ErrorCode.INVALID_ROOM: ("403", "No such channel"),
    ErrorCode.NOT_IN_ROOM: ("442", "You're not on that channel"),
    ErrorCode.NO_CURRENT_ROOM: ("442", "You're not on that channel"),
    ErrorCode.TOO_MANY_ROOMS: ("405", "You have joined too many channels"),
    ErrorCode.NOT_OP: ("482", "You're not channel operator"),
    ErrorCode.ALREADY_IN_ROOM: ("443", "is already on channel"),
    ErrorCode.PROTECTED: ("482", "You're not allowed to do that to them"),
    ErrorCode.BANNED: ("474", "Cannot join channel (+b)"),
    ErrorCode.INVITE_ONLY: ("473", "Cannot join channel (+i)"),
    ErrorCode.BAD_KEY: ("475", "Cannot join channel (+k)"),
    ErrorCode.ROOM_FULL: ("471", "Cannot join channel (+l)"),
    ErrorCode.MODERATED: ("404", "Cannot send to channel (+m)"),
    ErrorCode.LIST_FULL: ("478", "Channel list is full"),
    ErrorCode.LINE_TOO_LONG: ("417", "Input line was too long"),
    ErrorCode.UNKNOWN_COMMAND: ("421", "Unknown command"),
    ErrorCode.BAD_ARGUMENT: ("461", "Not enough parameters"),
    ErrorCode.NOT_OPERATOR: ("481", "Permission Denied- You're not an IRC operator"),
    ErrorCode.NO_SUCH_OPERATOR: ("491", "No O-lines for your host"),
    ErrorCode.BAD_PASSWORD: ("464", "Password incorrect"),  # OPER's (a login's failure is SASL's 904)
}

# a history read refused for these is CHATHISTORY's INVALID_TARGET (the others: MESSAGE_ERROR)
UNREADABLE_TARGET = frozenset({ErrorCode.NO_SUCH_ROOM, ErrorCode.INVALID_ROOM, ErrorCode.INVITE_ONLY,
                               ErrorCode.BAD_KEY, ErrorCode.BANNED, ErrorCode.NO_SUCH_ACCOUNT,
                               ErrorCode.NOT_LOGGED_IN})

# numerics that name nothing but the recipient: `464 nick :Password incorrect`
NO_SUBJECT = frozenset({"417", "464", "481", "491"})
PASSWORD_MISMATCH = "464"  # a wrong or missing server password (ERR_PASSWDMISMATCH), then ERROR

# numerics whose subject is a channel (the rest name a nick or a command)
USER_MODES = "ow"  # o: a server operator (OPER), w: receives WALLOPS

CHANNEL_NUMERICS = frozenset({"403", "404", "405", "442", "471", "473", "474", "475", "478", "482"})

# our verbs as IRC names them (for 461 and the like)
IRC_VERBS = {
    "say": "PRIVMSG", "msg": "PRIVMSG", "me": "PRIVMSG", "join": "JOIN", "leave": "PART", "topic": "TOPIC",
    "who": "NAMES", "rooms": "LIST", "whois": "WHOIS", "kick": "KICK", "invite": "INVITE", "mode": "MODE",
    "nick": "NICK", "quit": "QUIT", "ping": "PING", "history": "CHATHISTORY", "login": "AUTHENTICATE",
    "oper": "OPER", "kill": "KILL", "wallops": "WALLOPS", "time": "TIME", "umode": "MODE",
}


def info_lines() -> list[str]:
    """What INFO answers (371 each)."""
    return [f"chat {__version__}: a multi-room chat server with IRC, native and WebSocket doors",
            "Every message is stored before anyone sees it: delivered means stored",
            "History: CHATHISTORY, or the backlog on joining"]

# the errors of a login by SASL: 904 ERR_SASLFAIL (the rest of a login's errors too)
SASL_FAIL = "904"
