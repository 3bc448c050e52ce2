"""The IRC door's codec: IRC lines in, the same command models as the native protocol; events out as IRC lines
with numerics. Pure: no sockets, no services.

Per connection it keeps what IRC negotiates (registration's NICK and USER, the capabilities, a SASL exchange in
progress) and what its answers need (the questions asked whose answer is one event: NAMES and WHO both ask `Who`).
Registration is the codec's: it holds NICK until USER has come and capability negotiation has ended, then asks
for the nick (`Nick`), and the services' `Welcome` becomes 001-005 and the MOTD's 422.

Rendering shared between connections (a room's messages) depends on the event and the `key` only: the key holds
the negotiated capabilities that change those bytes (server-time, message-tags). Replies to this one connection
(numerics naming its nick, batches of history) may use the codec's state; the nick is the member's (`attach`).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import itertools
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from chat import __version__
from chat.protocol import commands as cmd
from chat.protocol import events as ev
from chat.protocol.codec import Codec, ControlFrame, Frame, Reply
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.framing import LineFramer
from chat.protocol.irc import mapping
from chat.protocol.irc.message import (
    MalformedLine,
    Message,
    escape_tag,
    format_tags,
    line,
    parse,
    unescape_tag,
)
from chat.protocol.masks import list_entry
from chat.protocol.names import KEY_MAX, check_member_limit, check_nick
from chat.protocol.render import iso_time, millis, parse_millis

# capabilities offered, with their CAP LS 302 values; those in SHARED change the bytes of shared renderings
CAPABILITIES: dict[str, str] = {
    "server-time": "",
    "message-tags": "",
    "echo-message": "",
    "batch": "",
    "sasl": "PLAIN",
    "draft/chathistory": "",
    "multi-prefix": "",
    "labeled-response": "",
    "userhost-in-names": "",
    "away-notify": "",
}
SHARED = frozenset({"server-time", "message-tags", "away-notify"})
PRE_REGISTRATION = frozenset({"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT", "AUTHENTICATE"})
SASL_MAX = 400  # bytes of one AUTHENTICATE chunk (the spec's)
CLIENT_TAGS_MAX = 32  # client-only tags relayed with one message
_TAG_NAME = re.compile(r"\+(?:[A-Za-z0-9.\-]+/)?[A-Za-z0-9\-]+")
_batch_ids = itertools.count(1)
RENDERED_MAX = 8192  # messages whose IRC line is kept for the next codec of the same key (a plain dict, cleared)
_RENDERED: dict[tuple[object, int], tuple[ev.ChatMessage, str]] = {}


@dataclass(slots=True, eq=False)
class _LabelEnd(ControlFrame):
    """Put after a labeled line by `frames`: the loop hands it to `decode` only once that line's reads are
    answered (the member waits for them), so the labeled response closes after the whole answer."""

    label: str


@dataclass(slots=True, eq=False)
class _LabelOpen(Reply):
    label: str = ""


@dataclass(slots=True, eq=False)
class _LabelClose(Reply):
    pass


@dataclass(slots=True, eq=False)
class _Asked:
    """A question whose answer is one event of a kind other questions share (Who, RoomModes, History)."""

    kind: str  # "names", "who", "userhost", "modes", "banlist", "invexlist", "history"
    target: str = ""
    # CHATHISTORY BETWEEN: only messages strictly inside (low, high), by "msgid" or by "timestamp" (milliseconds)
    between: tuple[str, int, int] | None = None
    around: str = ""  # CHATHISTORY AROUND is two pages: "first" (kept), then "second" (answered with both)
    held: list[ev.ChatMessage] | None = None  # ... the first page, kept
    sub: str = ""  # CHATHISTORY's subcommand as asked (LATEST, BEFORE...): its FAIL names it


@dataclass(slots=True, eq=False)
class _Modes:
    """Consecutive mode changes of one room by one nick (one MODE command's, as delivered): IRC says them in one
    MODE line, as servers answer `MODE #room -int`, with at most mapping.MODES_MAX words."""

    changes: list[ev.Mode]

    def takes(self, e: ev.Mode) -> bool:
        first = self.changes[0]
        words = sum(1 for c in self.changes if c.target is not None or c.mode == "+k")
        return (e.room == first.room and e.nick == first.nick
                and (words < mapping.MODES_MAX or (e.target is None and e.mode != "+k")))


class IrcCodec(Codec):
    __slots__ = ("_asked", "_caps", "_capture", "_framer", "_label", "_labels_open", "_member", "_negotiating",
                 "_nick", "_pass_given", "_password", "_sasl", "_sasl_buffer", "_user", "echo", "host", "info", "key",
                 "network")

    def __init__(self, server_name: str, info: str = mapping.SERVER_INFO, password: str | None = None) -> None:
        self.host = server_name
        self.network = server_name
        self.info = info  # the server's description (312, 364)
        self._password = password  # the server password registration needs (None: none)
        self._pass_given: str | None = None  # what PASS gave before registration
        self._framer = LineFramer(mapping.TAGS_MAX + mapping.BODY_MAX)
        self._caps: set[str] = set()
        self._negotiating = False
        self._nick: str | None = None  # the NICK given before registration
        self._user: list[str] | None = None
        self._sasl: str | None = None  # the mechanism of a SASL exchange in progress
        self._sasl_buffer = ""
        self._asked: deque[_Asked] = deque()
        self._member: Any = None
        self._labels_open = 0  # labeled lines decoded whose end is not decoded yet
        self._label: str | None = None  # rendering: the label whose answer is being gathered...
        self._capture: list[str] = []  # ...and its lines so far
        self.echo = False
        self.key: Any = ("irc", server_name, frozenset())

    def attach(self, member: Any) -> None:
        self._member = member

    # ---------------------------------------------------------------------------------------- input

    def frames(self, data: bytes) -> Sequence[Frame]:
        framed: list[Frame] = []
        for frame in self._framer.feed(data):
            if type(frame) is str:
                if len(frame) > mapping.BODY_MAX // 4 and _too_long(frame):
                    frame = ChatError(ErrorCode.LINE_TOO_LONG, "Input line was too long")
                elif frame.startswith("@") and "label=" in frame:
                    label = _label_of(frame)
                    if label is not None:
                        framed.extend((frame, _LabelEnd(label)))
                        continue
            framed.append(frame)
        return framed

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    def keepalive_ping(self) -> bytes | None:
        return line(None, "PING", self.host).encode()  # any line back counts, its PONG included

    def decode(self, frame: str | ControlFrame) -> Sequence[cmd.Command | ev.Event | Reply]:
        if isinstance(frame, _LabelEnd):
            if not self._labels_open:
                return ()
            self._labels_open -= 1
            return (_LabelClose(b""),)
        assert type(frame) is str
        label = _label_of(frame) if frame.startswith("@") and "labeled-response" in self._caps else None
        if label is None:
            return self._decode(frame)
        self._labels_open += 1
        try:
            said = self._decode(frame)
        except ChatError as e:
            said = (ev.Error(e.code, e.message, e.command, e.subject, e.room),)
        return (_LabelOpen(b"", label), *said)

    def _decode(self, frame: str) -> Sequence[cmd.Command | ev.Event | Reply]:
        if not frame.strip():
            return ()
        try:
            message = parse(frame)
        except MalformedLine:
            return ()
        verb = message.verb
        if not self._registered and verb not in PRE_REGISTRATION:
            return self._numeric("451", "You have not registered")
        handler = _HANDLERS.get(verb)
        if handler is None:
            return self._numeric("421", verb[:30], "Unknown command")
        try:
            return handler(self, message)
        except _Answer as a:
            return a.replies
        except ChatError as e:
            e.command = e.command or _OUR_VERB.get(verb, verb.lower())
            raise
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            kind = first["type"]
            code = ErrorCode(kind) if kind in ErrorCode._value2member_map_ else ErrorCode.BAD_ARGUMENT
            raise ChatError(code, str(first["msg"]), command=_OUR_VERB.get(verb, verb.lower())) from None

    @property
    def _registered(self) -> bool:
        return bool(self._member is not None and self._member.registered)

    @property
    def _me(self) -> str:
        member = self._member
        return member.nick if member is not None and member.registered else "*"

    def _numeric(self, number: str, *params: str) -> Sequence[Reply]:
        return (Reply(line(self.host, number, self._me, *params).encode()),)

    def _reply(self, *lines: str) -> Reply:
        return Reply("".join(lines).encode())

    def _need(self, m: Message, count: int) -> None:
        if len(m.params) < count or (count and not m.params[count - 1]):
            raise _Answer(self._numeric("461", m.verb, "Not enough parameters"))

    # registration ----------------------------------------------------------------------------

    def _cap(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        sub = m.params[0].upper() if m.params else ""
        me = self._me
        if sub == "LS":
            if not self._registered:
                self._negotiating = True
            v302 = len(m.params) > 1 and m.params[1].isdigit() and int(m.params[1]) >= 302
            offered = " ".join(f"{k}={v}" if v and v302 else k for k, v in CAPABILITIES.items())
            return (self._reply(line(self.host, "CAP", me, "LS", offered)),)
        if sub == "LIST":
            return (self._reply(line(self.host, "CAP", me, "LIST", " ".join(sorted(self._caps)))),)
        if sub == "REQ":
            if not self._registered:
                self._negotiating = True
            asked = m.params[1] if len(m.params) > 1 else ""
            wanted = asked.split()
            names = [w.lstrip("-") for w in wanted]
            if not wanted or any(n not in CAPABILITIES for n in names):
                return (self._reply(line(self.host, "CAP", me, "NAK", asked)),)
            for w in wanted:
                if w.startswith("-"):
                    self._caps.discard(w[1:])
                else:
                    self._caps.add(w)
            self._caps_changed()
            return (self._reply(line(self.host, "CAP", me, "ACK", asked)),)
        if sub == "END":
            was, self._negotiating = self._negotiating, False
            return self._try_register() if was else ()
        return self._numeric("410", sub[:20] or "*", "Invalid CAP command")

    def _caps_changed(self) -> None:
        self.echo = "echo-message" in self._caps
        self.key = ("irc", self.host, frozenset(self._caps & SHARED))

    def _nick_command(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if not m.params or not m.params[0]:
            return self._numeric("431", "No nickname given")
        nick = m.params[0]
        try:
            check_nick(nick)
        except ChatError:
            return self._numeric("432", nick[:40], "Erroneous nickname")
        if self._registered:
            return (cmd.Nick(nick=nick),)
        self._nick = nick
        return self._try_register()

    def _user_command(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if self._registered or self._user is not None:
            return self._numeric("462", "You may not reregister")
        self._need(m, 4)
        self._user = m.params[:4]
        return self._try_register()

    def _pass(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if self._registered:
            return self._numeric("462", "You may not reregister")
        self._need(m, 1)
        self._pass_given = m.params[0]  # checked at registration (a server password); accounts log in with SASL
        return ()

    def _try_register(self) -> Sequence[cmd.Command | ev.Event | Reply]:
        if self._registered or self._negotiating or self._nick is None or self._user is None:
            return ()
        if self._locked_out():
            return self._bad_password()
        return (cmd.Nick(nick=self._nick, user=self._user[0], realname=self._user[3]),)

    def _locked_out(self) -> bool:
        """Is there a server password this connection has not given (yet)?"""
        return self._password is not None and not _same(self._pass_given, self._password)

    def _bad_password(self) -> Sequence[cmd.Command | ev.Event | Reply]:
        return (*self._numeric(mapping.PASSWORD_MISMATCH, "Password incorrect"), cmd.Quit(reason="Bad password"))

    def _authenticate(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        if not self._registered and self._locked_out():
            return self._bad_password()  # the server password comes first: no account login tried without it
        if "sasl" not in self._caps:
            return self._numeric("904", "SASL authentication failed")
        if self._sasl is None and self._member is not None and self._member.account is not None:
            # logged in already: no second login over the first (the spec's SHOULD; 907 says so, as it allows)
            return self._numeric("907", "You have already authenticated using SASL")
        arg = m.params[0]
        if self._sasl is None:
            if arg == "*":
                return self._numeric("906", "SASL authentication aborted")
            if arg.upper() != "PLAIN":
                return (*self._numeric("908", "PLAIN", "are available SASL mechanisms"),
                        *self._numeric("904", "SASL authentication failed"))
            self._sasl, self._sasl_buffer = "PLAIN", ""
            return (self._reply(line(None, "AUTHENTICATE", "+")),)
        if arg == "*":
            self._sasl = None
            return self._numeric("906", "SASL authentication aborted")
        if len(arg) > SASL_MAX:
            self._sasl = None
            return self._numeric("905", "SASL message too long")
        if arg != "+":
            self._sasl_buffer += arg
            if len(self._sasl_buffer) > 4 * SASL_MAX:  # more than any PLAIN login needs: it fails (each line was
                self._sasl = None                          # short enough: 905 is for one too long)
                return self._numeric("904", "SASL authentication failed")
            if len(arg) == SASL_MAX:
                return ()  # more follows
        payload, self._sasl_buffer, self._sasl = self._sasl_buffer, "", None
        try:
            fields = base64.b64decode(payload, validate=True).decode().split("\0")
        except (binascii.Error, UnicodeDecodeError):
            return self._numeric("904", "SASL authentication failed")
        if len(fields) != 3 or not fields[1] or (fields[0] and fields[0] != fields[1]):
            return self._numeric("904", "SASL authentication failed")
        try:
            return (cmd.Login(nick=fields[1], password=fields[2], take_nick=False),)
        except ValidationError:
            return self._numeric("904", "SASL authentication failed")

    # chat ------------------------------------------------------------------------------------------

    def _join(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        if m.params[0] == "0":
            member = self._member
            return tuple(cmd.Leave(room=room.name) for room in list(member.rooms.values()))
        keys = m.params[1].split(",") if len(m.params) > 1 else []
        out: list[cmd.Command | ev.Event | Reply] = []
        for i, target in enumerate(m.params[0].split(",")):
            room = mapping.room_of(target)
            if room is None:
                out.extend(self._numeric("403", target[:50] or "*", "No such channel"))
                continue
            key = keys[i] if i < len(keys) and keys[i] else None
            out.append(cmd.Join(room=room, key=key))
        return out

    def _part(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        reason = m.params[1] if len(m.params) > 1 and m.params[1] else None
        out: list[cmd.Command | ev.Event | Reply] = []
        for target in m.params[0].split(","):
            room = mapping.room_of(target)
            if room is None or room.lower() not in self._member.rooms:
                out.extend(self._numeric("403" if room is None else "442", target[:50], "No such channel"
                                         if room is None else "You're not on that channel"))
                continue
            out.append(cmd.Leave(room=room, reason=reason))
        return out

    def _privmsg(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if not m.params or not m.params[0]:
            return self._numeric("411", f"No recipient given ({m.verb})")
        if len(m.params) < 2 or not m.params[1]:
            return self._numeric("412", "No text to send")
        text = m.params[1]
        client_tags = _client_tags(m.tags)
        out: list[cmd.Command | ev.Event | Reply] = []
        for target in m.params[0].split(",")[:4]:
            room = mapping.room_of(target)
            notice = m.verb == "NOTICE"  # never answered with an error (RFC 2812 3.3.2), as far as the codec knows
            if target.startswith(mapping.CHANNEL_PREFIX) and (room is None or (notice and (
                    room.lower() not in self._member.rooms))):
                if not notice:
                    out.extend(self._numeric("403", target[:50], "No such channel"))
                continue
            if text.startswith("\x01"):
                ctcp, _, rest = text.strip("\x01").partition(" ")
                if ctcp.upper() != "ACTION" or not rest.strip():
                    continue  # other CTCP (VERSION, PING...) is not relayed
                if room is not None:
                    out.append(cmd.Me(room=room, text=rest, client_tags=client_tags))
                else:
                    out.append(cmd.Msg(target=target, text=f"* {rest}"))
                continue
            out.append(cmd.Msg(target=mapping.channel(room) if room else target, text=text, notice=notice,
                               client_tags=client_tags))
        return out

    def _tagmsg(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if not m.params or not m.params[0]:
            return self._numeric("411", "No recipient given (TAGMSG)")
        target = m.params[0].split(",")[0]
        room = mapping.room_of(target)
        if target.startswith(mapping.CHANNEL_PREFIX) and room is None:
            return self._numeric("403", target[:50], "No such channel")
        return (cmd.Tagmsg(target=mapping.channel(room) if room else target,
                           client_tags=_client_tags(m.tags) or {}),)

    def _quit(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        reason = m.params[0] if m.params and m.params[0] else None
        return (cmd.Quit(reason=reason),)

    def _ping(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if not m.params or not m.params[0]:
            return self._numeric("409", "No origin specified")
        return (cmd.Ping(token=m.params[0]),)

    def _pong(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        return ()

    def _topic(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        room = mapping.room_of(m.params[0])
        if room is None:
            return self._numeric("403", m.params[0][:50], "No such channel")
        if len(m.params) < 2:
            return (cmd.Topic(room=room),)
        return (cmd.Topic(room=room, text=m.params[1] or "-"),)

    def _names(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if not m.params or not m.params[0]:
            return self._numeric("366", "*", "End of /NAMES list")
        out: list[cmd.Command | ev.Event | Reply] = []
        for target in m.params[0].split(","):
            room = mapping.room_of(target)
            if room is None:
                out.extend(self._numeric("366", target[:50] or "*", "End of /NAMES list"))
                continue
            self._asked.append(_Asked("names"))
            out.append(cmd.Who(room=room))
        return out

    def _who(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        mask = m.params[0] if m.params and m.params[0] else "*"
        room = mapping.room_of(mask)
        if room is None:
            if mask.startswith(mapping.CHANNEL_PREFIX) or len(mask) > 64:
                return self._numeric("315", mask[:50], "End of WHO list")
            self._asked.append(_Asked("who", mask))
            return (cmd.Who(mask=mask),)
        self._asked.append(_Asked("who", mask))
        return (cmd.Who(room=room),)

    def _list(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        return (cmd.Rooms(),)

    def _whois(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        nick = m.params[-1].split(",")[0]
        try:
            check_nick(nick)
        except ChatError:
            return (*self._numeric("401", nick[:50], "No such nick/channel"),
                    *self._numeric("318", nick[:50], "End of /WHOIS list"))
        return (cmd.Whois(nick=nick),)

    def _mode(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        target = m.params[0]
        room = mapping.room_of(target)
        if room is None:
            if target.startswith(mapping.CHANNEL_PREFIX):
                return self._numeric("403", target[:50], "No such channel")
            if target.lower() != self._me.lower():
                return self._numeric("502", "Can't change mode for other users")
            if len(m.params) < 2:
                return (cmd.Umode(),)
            return self._user_mode(m.params[1])
        if len(m.params) < 2:
            self._asked.append(_Asked("modes"))
            return (cmd.Mode(room=room),)
        modes = m.params[1]
        if modes[:1] not in "+-":
            modes = "+" + modes
        if modes.strip("+-") in mapping.LIST_MODES and len(m.params) == 2:  # +b, +I alone: the list
            self._asked.append(_Asked(mapping.LIST_MODES[modes.strip("+-")]))
            return (cmd.Mode(room=room),)
        unknown = [c for c in modes if c not in "+-" and c not in cmd.MODE_LETTERS]
        if unknown:
            return self._numeric("472", unknown[0], "is unknown mode char to me")
        if not modes.strip("+-"):
            return ()
        words = _words_set(modes, m.params[2:])
        if any(not k.strip() or " " in k or len(k) > KEY_MAX for k in words.get("k", ())):
            return self._numeric("696", mapping.channel(room), "k", "*",
                                 f"Invalid key: no spaces, 1 to {KEY_MAX} characters")
        for limit in words.get("l", ()):
            try:
                check_member_limit(limit)
            except ChatError as e:
                return self._numeric("696", mapping.channel(room), "l", limit[:20] or "*", e.message)
        for letter in mapping.LIST_MODES:
            for word in words.get(letter, ()):
                try:
                    list_entry(word)
                except ChatError as e:
                    return self._numeric("696", mapping.channel(room), letter, word[:50], e.message)
        # list words (+b +e +I) go as given: a nick, `nick!*@*` (the same) or a mask (chat.protocol.masks)
        return (cmd.Mode(room=room, modes=modes, args=tuple(m.params[2:])),)

    def _kick(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 2)
        room = mapping.room_of(m.params[0])
        if room is None:
            return self._numeric("403", m.params[0][:50], "No such channel")
        reason = m.params[2] if len(m.params) > 2 and m.params[2] else None
        return tuple(cmd.Kick(room=room, nick=nick, reason=reason) for nick in m.params[1].split(",") if nick)

    def _invite(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 2)
        room = mapping.room_of(m.params[1])
        if room is None:
            return self._numeric("403", m.params[1][:50], "No such channel")
        return (cmd.Invite(nick=m.params[0], room=room),)

    def _chathistory(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        sub = asked = m.params[0].upper() if m.params else ""
        if sub == "TARGETS":
            return self._targets(m)
        between = None
        if sub == "BETWEEN" and len(m.params) >= 5:  # BETWEEN target ref ref count: a page from the first ref on
            first, second = _reference(m.params[2]), _reference(m.params[3])
            if first is None or second is None or first[0] != second[0]:
                return (self._fail("CHATHISTORY", "INVALID_PARAMS", sub, "Two msgid= or two timestamp= references"),)
            between = (first[0], min(first[1], second[1]), max(first[1], second[1]))
            sub = "AFTER" if first[1] < second[1] else "BEFORE"
            m = Message(m.verb, [m.params[0], m.params[1], m.params[2], m.params[4]], m.tags, m.source)
        if len(m.params) < 4 or sub not in ("LATEST", "BEFORE", "AFTER", "AROUND"):
            return (self._fail("CHATHISTORY", "INVALID_PARAMS", sub or "*", "Unsupported CHATHISTORY request"),)
        target, point, count = m.params[1], m.params[2], m.params[3]
        if not count.isdigit() or int(count) < 1:
            return (self._fail("CHATHISTORY", "INVALID_PARAMS", sub, "Invalid message count"),)
        limit = min(int(count), mapping.CHATHISTORY_MAX)
        args: dict[str, Any] = {"count": limit}
        room = mapping.room_of(target)
        if room is not None:
            args["room"] = room
        else:
            try:
                args["nick"] = check_nick(target)
            except ChatError:
                return (self._fail("CHATHISTORY", "INVALID_TARGET", sub, target[:50], "Invalid target"),)
        ref: tuple[str | None, int] | None = (None, 0) if sub == "LATEST" and point == "*" else _reference(point)
        if ref is None:
            return (self._fail("CHATHISTORY", "INVALID_PARAMS", sub, "Invalid msgid= or timestamp= reference"),)
        kind, value = ref
        # a msgid bounds by id; a timestamp by time (in milliseconds, as server-time shows them), which the
        # storage reader turns into an id (chat.storage.repository.first_id_from)
        if kind is None:
            args["before"] = cmd.MESSAGE_ID_MAX
        elif sub in ("LATEST", "AFTER"):  # LATEST with a reference: what came after it, as AFTER
            args["after" if kind == "msgid" else "after_ms"] = value
        elif sub == "BEFORE":
            args["before" if kind == "msgid" else "before_ms"] = value
        else:  # AROUND: the message (or moment) and those before it, then those after it: two pages, one answer
            before = limit - limit // 2
            if kind == "msgid":
                args.update(before=min(value + 1, cmd.MESSAGE_ID_MAX), count=before)
                newer = {**args, "before": None, "after": value, "count": limit - before}
            else:
                args.update(before_ms=value + 1, count=before)
                newer = {**args, "before_ms": None, "after_ms": value, "count": limit - before}
            if limit - before:
                self._asked.append(_Asked("history", target, around="first", sub=asked))
                self._asked.append(_Asked("history", target, around="second", sub=asked))
                return (cmd.History(**args), cmd.History(**newer))
        self._asked.append(_Asked("history", target, between, sub=asked))
        return (cmd.History(**args),)

    def _targets(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        """TARGETS timestamp=A timestamp=B N: the rooms and conversations whose latest message is between."""
        if len(m.params) < 4:
            return (self._fail("CHATHISTORY", "INVALID_PARAMS", "TARGETS", "TARGETS timestamp= timestamp= count"),)
        first, second, count = _reference(m.params[1]), _reference(m.params[2]), m.params[3]
        if first is None or second is None or first[0] != "timestamp" or second[0] != "timestamp":
            return (self._fail("CHATHISTORY", "INVALID_PARAMS", "TARGETS", "Two timestamp= references"),)
        if not count.isdigit() or int(count) < 1:
            return (self._fail("CHATHISTORY", "INVALID_PARAMS", "TARGETS", "Invalid count"),)
        low, high = sorted((first[1], second[1]))
        self._asked.append(_Asked("targets", sub="TARGETS"))
        return (cmd.Targets(count=min(int(count), mapping.CHATHISTORY_MAX), after_ms=low, before_ms=high),)

    def _r_targets(self, e: ev.Targets) -> str:
        self._pop("targets")
        lines = [line(self.host, "CHATHISTORY", "TARGETS",
                      mapping.channel(x.room) if x.room is not None else x.nick or "*", iso_time(x.time))
                 for x in e.targets]
        return "".join(self._batch("draft/chathistory-targets", lines))

    def _away(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        return (cmd.Away(text=m.params[0] if m.params and m.params[0] else None),)

    def _userhost(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        out: list[cmd.Command | ev.Event | Reply] = []
        for nick in m.params[:5]:  # one 302 line per nick (each is its own question)
            try:
                out.append(cmd.Who(mask=check_nick(nick)))
            except ChatError:
                out.extend(self._numeric("302", ""))
                continue
            self._asked.append(_Asked("userhost", nick))
        return out

    def _lusers(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        return (cmd.Online(),)

    def _whowas(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if not m.params or not m.params[0]:
            return self._numeric("431", "No nickname given")
        nick = m.params[0].split(",")[0]
        count = m.params[1] if len(m.params) > 1 else ""
        wanted = min(int(count), cmd.WHOWAS_MAX) if count.isdigit() and int(count) > 0 else None
        try:
            return (cmd.Whowas(nick=nick, count=wanted),)
        except ValidationError:
            return (*self._numeric("406", nick[:50], "There was no such nickname"),
                    *self._numeric("369", nick[:50], "End of WHOWAS"))

    def _user_mode(self, modes: str) -> Sequence[cmd.Command | ev.Event | Reply]:
        """MODE yourself +w/-w/-o (+o is OPER's): the letters we know are changed, the others answered 501."""
        if modes[:1] not in "+-":
            modes = "+" + modes
        known = "".join(c for c in modes if c in "+-" or c in mapping.USER_MODES)
        out: list[cmd.Command | ev.Event | Reply] = []
        if known.strip("+-"):
            out.append(cmd.Umode(modes=known))
        if any(c not in "+-" and c not in mapping.USER_MODES for c in modes):
            out.extend(self._numeric("501", "Unknown MODE flag"))
        return out

    def _oper(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 2)
        try:
            name = check_nick(m.params[0])
        except ChatError:  # not an account's name: no admin account has it
            return self._numeric("491", "No O-lines for your host")
        return (cmd.Oper(account=name, password=m.params[1]),)

    def _kill(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        nick = m.params[0]
        try:
            check_nick(nick)
        except ChatError:
            return self._numeric("401", nick[:50], "No such nick/channel")
        reason = m.params[1] if len(m.params) > 1 and m.params[1] else None
        return (cmd.Kill(nick=nick, reason=reason),)

    def _wallops(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        self._need(m, 1)
        return (cmd.Wallops(text=m.params[0]),)

    def _time(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        return (cmd.Time(),)

    def _info(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        if m.params and m.params[0] and not fnmatch.fnmatchcase(self.host.lower(), m.params[0].lower()):
            return self._numeric("402", m.params[0][:64], "No such server")  # one server: only its name (or a mask)
        me, host = self._me, self.host
        return (self._reply(*(line(host, "371", me, text) for text in mapping.info_lines()),
                            line(host, "374", me, "End of INFO list")),)

    def _links(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        me, host = self._me, self.host  # one server, no links: itself at hop count 0
        return (self._reply(line(host, "364", me, host, host, f"0 {self.info}"),
                            line(host, "365", me, "*", "End of /LINKS list")),)

    def _motd(self, m: Message) -> Sequence[cmd.Command | ev.Event | Reply]:
        return self._numeric("422", "MOTD File is missing")

    def _fail(self, verb: str, code: str, *context: str) -> Reply:
        return self._reply(line(self.host, "FAIL", verb, code, *context))

    # ---------------------------------------------------------------------------------------- output

    def render(self, events: Sequence[ev.Event | Reply]) -> bytes:
        out: list[str] = []
        modes: _Modes | None = None  # consecutive mode changes of one room by one nick: one MODE line
        for e in events:
            if type(e) is ev.Mode:
                if modes is not None and modes.takes(e):
                    modes.changes.append(e)
                    continue
                if modes is not None:
                    out.append(self._render(modes))
                modes = _Modes([e])
                continue
            if modes is not None:
                out.append(self._render(modes))
                modes = None
            out.append(self._render(e))
        if modes is not None:
            out.append(self._render(modes))
        return "".join(out).encode()

    def _render(self, event: ev.Event | Reply | _Modes) -> str:
        if self._label is not None and not isinstance(event, _LabelClose | ev.Bye):
            if isinstance(event, ev.ChatMessage | ev.TagMessage) and self._to_self(event):  # the echo is labeled,
                once = self._message(event) if isinstance(event, ev.ChatMessage) else self._tagmsg_line(event)
                self._capture.append(once)  # ... the delivery not
                return once
            self._capture.append(self._render_one(event))  # rendered for this connection alone meanwhile (key)
            return ""
        if isinstance(event, _LabelOpen):
            self._label, self._capture = event.label, []
            self.key = None  # its output is gathered into the labeled response meanwhile: rendered for it alone
            return ""
        if isinstance(event, _LabelClose):
            return self._labeled()
        if isinstance(event, ev.Bye) and self._label is not None:
            return self._labeled() + self._render_one(event)
        return self._render_one(event)

    def _labeled(self) -> str:
        """The gathered answer to a labeled line: one line with the label, a labeled-response batch, or ACK."""
        label, lines = self._label or "", "".join(self._capture).split("\r\n")[:-1]
        self._label, self._capture = None, []
        self._caps_changed()
        tag = "label=" + escape_tag(label)
        if not lines:
            return line(self.host, "ACK", tags="@" + tag)
        if len(lines) == 1:
            return _tagged(lines[0], tag) + "\r\n"
        ref = f"h{next(_batch_ids)}"
        return "".join([line(self.host, "BATCH", f"+{ref}", "labeled-response", tags="@" + tag),
                        *((x if _in_batch(x) else _tagged(x, f"batch={ref}")) + "\r\n" for x in lines),
                        line(self.host, "BATCH", f"-{ref}")])

    def _render_one(self, event: ev.Event | Reply | _Modes) -> str:
        if isinstance(event, Reply):
            return event.data.decode()
        renderer = _RENDERERS.get(type(event))
        return renderer(self, event) if renderer is not None else ""

    def _tags(self, when: float | None, msgid: int | None = None, batch: str | None = None,
              client_tags: dict[str, str] | None = None) -> str:
        tags: dict[str, str | None] = {}
        if batch is not None:
            tags["batch"] = batch
        if when is not None and "server-time" in self._caps:
            tags["time"] = iso_time(when)
        if "message-tags" in self._caps:
            if msgid is not None:
                tags["msgid"] = str(msgid)
            if client_tags:
                tags.update(client_tags)
        return format_tags(tags)

    def _source(self, nick: str) -> str:
        return f"{nick}!{nick}@{self.host}"

    def _message(self, msg: ev.ChatMessage, batch: str | None = None, live: bool = True) -> str:
        """`live` False: history, which has no client-only tags (they are relayed, never stored)."""
        tags = self._tags(msg.time, msg.id, batch, msg.client_tags if live else None) if self._caps or batch else ""
        source = self._source(msg.nick)
        target = mapping.channel(msg.room) if msg.room is not None else (msg.to or self._me)
        if msg.kind is ev.MessageKind.ACTION:
            return line(source, "PRIVMSG", target, f"\x01ACTION {msg.text}\x01", tags=tags)
        verb = "NOTICE" if msg.notice else "PRIVMSG"
        return "".join(line(source, verb, target, part, tags=tags) for part in _chunks(msg.text))

    def _batch(self, kind: str, lines: list[str], *params: str) -> list[str]:
        if "batch" not in self._caps:
            return lines
        ref = f"h{next(_batch_ids)}"
        return [line(self.host, "BATCH", f"+{ref}", kind, *params),
                *(f"@batch={ref}{';' + x[1:] if x.startswith('@') else ' ' + x}" for x in lines),
                line(self.host, "BATCH", f"-{ref}")]

    def _to_self(self, e: ev.ChatMessage | ev.TagMessage) -> bool:
        """A private message to yourself, with echo-message: it comes twice, the echo and the delivery."""
        return self.echo and e.to is not None and e.to == e.nick

    def _r_message(self, e: ev.ChatMessage) -> str:
        # a run may be rendered twice for a key (whole for a reader, in parts for the senders without echo-message
        # that the deliverer cuts their own lines out of: delivery._Cut): once per key and message is enough
        if self._label is not None:  # its key is its own meanwhile
            return self._message(e)
        cache_key = (self.key, e.id)
        found = _RENDERED.get(cache_key)
        if found is None or found[0] is not e:  # (another server in this process may have had that id)
            if len(_RENDERED) >= RENDERED_MAX:
                _RENDERED.clear()
            text = self._message(e)
            found = _RENDERED[cache_key] = (e, text + text if self._to_self(e) else text)
        return found[1]

    def _r_join(self, e: ev.Join) -> str:
        joined = line(self._source(e.nick), "JOIN", mapping.channel(e.room), tags=self._tags(e.time))
        if e.away is not None and "away-notify" in self._caps:
            joined += line(self._source(e.nick), "AWAY", e.away)
        return joined

    def _r_joined(self, e: ev.Joined) -> str:
        me, host, channel = self._me, self.host, mapping.channel(e.room)
        lines = [line(self._source(me), "JOIN", channel, tags=self._tags(e.time))]
        if e.topic:
            lines.append(line(host, "332", me, channel, e.topic))
            if e.topic_by and e.topic_at:
                lines.append(line(host, "333", me, channel, e.topic_by, str(int(e.topic_at))))
        lines.extend(self._name_lines(e.room, e.members, e.ops, e.voiced, e.secret))
        return "".join(lines)

    def _name_lines(self, room: str, members: list[str], ops: list[str], voiced: list[str],
                    secret: bool) -> list[str]:
        me, host, channel = self._me, self.host, mapping.channel(room)
        every = "multi-prefix" in self._caps
        full = "userhost-in-names" in self._caps
        shown = [_prefix(n, ops, voiced, every) + (self._source(n) if full else n) for n in members]
        symbol = "@" if secret else "="  # RFC 2812's mark of a secret channel
        lines = []
        for start in range(0, len(shown), 40):
            lines.append(line(host, "353", me, symbol, channel, " ".join(shown[start:start + 40])))
        lines.append(line(host, "366", me, channel, "End of /NAMES list"))
        return lines

    def _r_history(self, e: ev.History) -> str:
        if e.reason == "backlog":
            if "draft/chathistory" in self._caps:
                return ""  # it asks for history itself
            return "".join(self._history_lines(e.messages, mapping.channel(e.room)))
        asked = self._pop("history")
        messages = self._around(e.messages, asked)
        if messages is None:
            return ""
        return "".join(self._history_lines(messages, asked.target if asked else mapping.channel(e.room)))

    def _r_private_history(self, e: ev.PrivateHistory) -> str:
        if e.reason == "offline":
            return "".join(self._history_lines(e.messages, self._me))
        asked = self._pop("history")
        messages = self._around(e.messages, asked)
        if messages is None:
            return ""
        return "".join(self._history_lines(messages, asked.target if asked else (e.nick or "*")))

    def _around(self, messages: list[ev.ChatMessage], asked: _Asked | None) -> list[ev.ChatMessage] | None:
        """A history page as CHATHISTORY asked for it: cut for BETWEEN; for AROUND, None for its first page
        (kept), then both pages as one."""
        if asked is not None and asked.around == "first":
            if self._asked and self._asked[0].around == "second":
                self._asked[0].held = messages
                return None
            return messages
        if asked is not None and asked.around == "second":
            return (asked.held or []) + messages
        return _inside(messages, asked)

    def _history_lines(self, messages: list[ev.ChatMessage], target: str) -> list[str]:
        if "batch" not in self._caps:
            return [self._message(x, live=False) for x in messages]
        ref = f"h{next(_batch_ids)}"
        return [line(self.host, "BATCH", f"+{ref}", "chathistory", target),
                *(self._message(x, ref, live=False) for x in messages), line(self.host, "BATCH", f"-{ref}")]

    def _r_part(self, e: ev.Part) -> str:
        channel = mapping.channel(e.room)
        params = (channel, e.reason) if e.reason else (channel,)
        return line(self._source(e.nick), "PART", *params, tags=self._tags(e.time))

    def _r_quit(self, e: ev.Quit) -> str:
        return line(self._source(e.nick), "QUIT", f"Quit: {e.reason}" if e.reason else "Quit:",
                    tags=self._tags(e.time))

    def _r_nick(self, e: ev.NickChange) -> str:
        return line(self._source(e.old), "NICK", e.new, tags=self._tags(e.time))

    def _r_topic(self, e: ev.Topic) -> str:
        channel = mapping.channel(e.room)
        if e.change:
            return line(self._source(e.nick or self.host), "TOPIC", channel, e.topic or "", tags=self._tags(e.time))
        me = self._me
        if not e.topic:
            return line(self.host, "331", me, channel, "No topic is set")
        out = line(self.host, "332", me, channel, e.topic)
        if e.nick and e.time:
            out += line(self.host, "333", me, channel, e.nick, str(int(e.time)))
        return out

    def _r_who(self, e: ev.Who) -> str:
        asked = self._pop("names", "who", "userhost")
        channel = mapping.channel(e.room)
        if asked is not None and asked.kind == "userhost":
            found = " ".join(f"{p.nick}={'-' if p.away is not None else '+'}{p.user}@{self.host}" for p in e.people)
            return line(self.host, "302", self._me, found)
        if asked is not None and asked.kind == "who":
            me, host = self._me, self.host
            if e.mask is not None:
                channel = "*"  # people, not a room's members: no room, no prefix
            every = "multi-prefix" in self._caps
            lines = []
            for p in e.people:
                flag = ("G" if p.away is not None else "H") + ("*" if p.oper else "") + (
                    _prefix(p.nick, e.ops, e.voiced, every) if e.mask is None else "")
                lines.append(line(host, "352", me, channel, p.user, host, host, p.nick, flag, f"0 {p.realname}"))
            lines.append(line(host, "315", me, asked.target or channel, "End of WHO list"))
            return "".join(lines)
        return "".join(self._name_lines(e.room, e.members, e.ops, e.voiced, e.secret))

    def _r_rooms(self, e: ev.RoomList) -> str:
        me, host = self._me, self.host
        lines = [line(host, "321", me, "Channel", "Users  Name")]
        lines.extend(line(host, "322", me, mapping.channel(r.room), str(r.members), r.topic or "") for r in e.rooms)
        lines.append(line(host, "323", me, "End of /LIST"))
        return "".join(lines)

    def _r_pong(self, e: ev.Pong) -> str:
        return line(self.host, "PONG", self.host, e.token or "")

    def _r_notice(self, e: ev.Notice) -> str:
        if not self._registered:
            return ""  # the native prompts ("type a nickname"): registration's numerics say it here
        return line(self.host, "NOTICE", self._me, e.text)

    def _r_help(self, e: ev.Help) -> str:
        return "".join(line(self.host, "NOTICE", self._me, text or " ") for text in e.lines)

    def _r_welcome(self, e: ev.Welcome) -> str:
        me, host = e.nick, self.host
        lines = [
            line(host, "001", me, f"Welcome to the {self.network} IRC network, {me}"),
            line(host, "002", me, f"Your host is {host}, running chat"),
            line(host, "003", me, "This server keeps every message it delivers"),
            line(host, "004", me, host, f"chat-{__version__}", mapping.USER_MODES, "".join(sorted(cmd.MODE_LETTERS)),
                 "".join(sorted(k for k, word in cmd.MODE_LETTERS.items() if word))),
        ]
        tokens = mapping.isupport(self.network)
        for start in range(0, len(tokens), 12):
            lines.append(line(host, "005", me, *tokens[start:start + 12], "are supported by this server"))
        if e.online is not None:  # LUSERS' numbers, as servers send them after 005
            lines.append(self._r_online(e.online, me))
        lines.append(line(host, "422", me, "MOTD File is missing"))
        return "".join(lines)

    def _r_error(self, e: ev.Error) -> str:
        me, host = self._me, self.host
        if e.command == "login":
            return line(host, mapping.SASL_FAIL, me, e.message)
        if e.command == "targets" and self._pop("targets") is not None:
            return line(host, "FAIL", "CHATHISTORY", "MESSAGE_ERROR", "TARGETS", e.message)
        if e.command == "history":
            asked = self._pop("history")
            if e.code in mapping.UNREADABLE_TARGET:  # no such room, or not one this client may read
                return line(host, "FAIL", "CHATHISTORY", "INVALID_TARGET", (asked.sub if asked else "") or "*",
                            (asked.target if asked else "") or e.subject or "*", e.message)
            return line(host, "FAIL", "CHATHISTORY", "MESSAGE_ERROR", e.subject or "*", e.message)
        if e.command == "mode":
            self._pop("modes", "banlist")
        if e.code is ErrorCode.INVALID_UTF8:
            return line(host, "FAIL", "*", "INVALID_UTF8", "Your line was not valid UTF-8; it was ignored")
        if e.command == "whois" and e.code is ErrorCode.NO_SUCH_NICK:
            nick = e.subject or "*"
            return line(host, "401", me, nick, "No such nick/channel") + line(host, "318", me, nick,
                                                                             "End of /WHOIS list")
        found = mapping.NUMERICS.get(e.code)
        if found is None:
            return line(host, "NOTICE", me, e.message)
        number, words = found
        subject = e.subject or "*"
        if e.room is not None and e.code in (ErrorCode.NOT_IN_ROOM, ErrorCode.ALREADY_IN_ROOM):
            number = "441" if e.code is ErrorCode.NOT_IN_ROOM else "443"  # about someone else, in a room
            words = "They aren't on that channel" if number == "441" else words
            return line(host, number, me, subject, mapping.channel(e.room), words)
        if e.code in (ErrorCode.NOT_IN_ROOM, ErrorCode.BANNED) and e.command in ("msg", "say", "me"):
            number, words = "404", "Cannot send to channel"
        elif e.code in (ErrorCode.BAD_ARGUMENT, ErrorCode.UNKNOWN_COMMAND):
            subject = mapping.IRC_VERBS.get(e.command or "", (e.command or "*").upper())
        if number in mapping.CHANNEL_NUMERICS and subject != "*":
            subject = mapping.channel(subject)
        if number in mapping.NO_SUBJECT:
            return line(host, number, me, words)
        return line(host, number, me, subject, words)

    def _r_bye(self, e: ev.Bye) -> str:
        nick = self._member.nick if self._member is not None and self._member.nick else "*"  # (its last nick)
        return line(None, "ERROR", f"Closing Link: {nick}[{self.host}] ({e.reason})")

    def _r_account(self, e: ev.AccountChange) -> str:
        me, host = self._me, self.host
        if e.change in ("registered", "logged_in"):
            out = line(host, "900", me, self._source(me), e.account, f"You are now logged in as {e.account}")
            return out + line(host, "903", me, "SASL authentication successful")
        if e.change == "logged_out":
            return line(host, "901", me, self._source(me), "You are now logged out")
        return line(host, "NOTICE", me, f"The password of {e.account} is changed.")

    def _r_password_wanted(self, e: ev.PasswordWanted) -> str:
        return line(self.host, "433", self._me, e.nick, "Nickname is registered to an account: log in with SASL")

    def _r_whois(self, e: ev.WhoIs) -> str:
        me, host = self._me, self.host
        if not e.online:
            return line(host, "401", me, e.nick, "No such nick/channel") + line(host, "318", me, e.nick,
                                                                                 "End of /WHOIS list")
        person = e.person or ev.Person(e.nick, e.nick, e.nick)
        lines = [line(host, "311", me, e.nick, person.user, host, "*", person.realname),
                 line(host, "312", me, e.nick, host, self.info)]
        if e.rooms:
            every = "multi-prefix" in self._caps
            shown = [_prefix(r, e.op_in, e.voiced_in, every) + mapping.channel(r) for r in e.rooms]
            for start in range(0, len(shown), 20):
                lines.append(line(host, "319", me, e.nick, " ".join(shown[start:start + 20])))
        if person.away is not None:
            lines.append(line(host, "301", me, e.nick, person.away))
        if e.registered:
            lines.append(line(host, "330", me, e.nick, e.nick, "is logged in as"))
        if e.admin:
            lines.append(line(host, "313", me, e.nick, "is an IRC operator"))
        if e.idle is not None:
            lines.append(line(host, "317", me, e.nick, str(int(e.idle)), str(int(e.signed_on or 0)),
                              "seconds idle, signon time"))
        lines.append(line(host, "318", me, e.nick, "End of /WHOIS list"))
        return "".join(lines)

    def _r_kick(self, e: ev.Kick) -> str:
        return line(self._source(e.by), "KICK", mapping.channel(e.room), e.nick, e.reason or e.by,
                    tags=self._tags(e.time))

    def _r_mode(self, e: ev.Mode) -> str:
        return self._r_modes(_Modes([e]))

    def _r_modes(self, e: _Modes) -> str:
        first = e.changes[0]
        letters, words, sign = [], [], ""
        for change in e.changes:
            if change.mode[0] != sign:
                sign = change.mode[0]
                letters.append(sign)
            letters.append(change.mode[1])
            if change.target is not None:  # an exception's nick is shown as the mask it stands for
                words.append(mapping.as_mask(change.target) if change.mode[1] in "Ie" else change.target)
            elif change.mode == "+k":
                words.append("*")  # the key is never broadcast
        return line(self._source(first.nick), "MODE", mapping.channel(first.room), "".join(letters), *words,
                    tags=self._tags(first.time))

    def _r_invite(self, e: ev.Invite) -> str:
        me = self._me
        if e.target.lower() == me.lower() and e.nick.lower() != me.lower():
            return line(self._source(e.nick), "INVITE", e.target, mapping.channel(e.room))
        return line(self.host, "341", me, e.target, mapping.channel(e.room))

    def _r_room_modes(self, e: ev.RoomModes) -> str:
        me, host, channel = self._me, self.host, mapping.channel(e.room)
        asked = self._pop("modes", "banlist", "invexlist", "exceptlist")
        if asked is not None and asked.kind in _LISTS:
            entries, number, end, said = _LISTS[asked.kind]
            return "".join(line(host, number, me, channel, mapping.as_mask(x)) for x in getattr(e, entries)) + line(
                host, end, me, channel, said)
        modes = e.modes or "+"
        params = [channel, modes]
        for letter in modes:  # their words in the letters' order: the key (to ops only, else *), the limit
            if letter == "k":
                params.append(e.key or "*")
            elif letter == "l" and e.limit is not None:
                params.append(str(e.limit))
        out = line(host, "324", me, *params)
        if e.created_at is not None:
            out += line(host, "329", me, channel, str(int(e.created_at)))
        return out

    def _r_away(self, e: ev.Away) -> str:
        if e.changed:  # someone sharing a room went away or came back
            if "away-notify" not in self._caps:
                return ""
            return line(self._source(e.nick), "AWAY", *((e.message,) if e.message is not None else ()))
        if not e.you:
            return line(self.host, "301", self._me, e.nick, e.message or "")
        if e.message is None:
            return line(self.host, "305", self._me, "You are no longer marked as being away")
        return line(self.host, "306", self._me, "You have been marked as being away")

    def _r_online(self, e: ev.Online, me: str | None = None) -> str:
        me, host = me or self._me, self.host
        return "".join([
            line(host, "251", me, f"There are {e.people} users and 0 invisible on 1 servers"),
            line(host, "254", me, str(e.rooms), "channels formed"),
            line(host, "255", me, f"I have {e.people} clients and 0 servers"),
            line(host, "265", me, str(e.people), str(e.most), f"Current local users {e.people}, max {e.most}"),
            line(host, "266", me, str(e.people), str(e.most), f"Current global users {e.people}, max {e.most}"),
        ])

    def _r_whowas(self, e: ev.WhoWas) -> str:
        me, host = self._me, self.host
        if not e.people:
            out = line(host, "406", me, e.nick, "There was no such nickname")
        else:
            out = "".join(line(host, "314", me, p.nick, p.user, host, "*", p.realname)
                          + line(host, "312", me, p.nick, host, self.info) for p in e.people)
        return out + line(host, "369", me, e.nick, "End of WHOWAS")

    def _r_operator(self, e: ev.Operator) -> str:
        me = self._me
        return (line(self.host, "381", me, "You are now an IRC operator")
                + line(self._source(me), "MODE", me, "+o"))

    def _r_user_modes(self, e: ev.UserModes) -> str:
        me = self._me
        if e.change:
            return line(self._source(me), "MODE", me, e.modes)
        return line(self.host, "221", me, e.modes)

    def _r_wallops(self, e: ev.Wallops) -> str:
        return line(self._source(e.nick), "WALLOPS", e.text)

    def _r_tagmsg(self, e: ev.TagMessage) -> str:
        if "message-tags" not in self._caps:
            return ""  # tags are all it carries
        text = self._tagmsg_line(e)
        if e.nick != self._me:
            return text
        if e.to is not None and e.to == e.nick:  # to yourself: received, and with echo-message echoed too
            return text + text if self.echo else text
        return text if self.echo else ""

    def _tagmsg_line(self, e: ev.TagMessage) -> str:
        target = mapping.channel(e.room) if e.room is not None else (e.to or self._me)
        return line(self._source(e.nick), "TAGMSG", target, tags=self._tags(e.time, e.id, None, e.tags))

    def _r_time(self, e: ev.ServerTime) -> str:
        shown = datetime.fromtimestamp(e.time, UTC).strftime("%A %B %d %Y -- %H:%M:%S +00:00")
        return line(self.host, "391", self._me, self.host, shown)

    def _pop(self, *kinds: str) -> _Asked | None:
        asked = self._asked
        if asked and asked[0].kind in kinds:
            return asked.popleft()
        return None


class _Answer(Exception):
    """Raised by a handler with what to answer instead (a numeric refusing the line)."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = replies


def _label_of(frame: str) -> str | None:
    """The label tag of a received line, if it has one (labeled-response)."""
    head = frame[1:].partition(" ")[0]
    for item in head.split(";"):
        key, _, value = item.partition("=")
        if key == "label" and value:
            return unescape_tag(value)[:64]
    return None


def _client_tags(tags: dict[str, str]) -> dict[str, str] | None:
    """The client-only tags (`+name`) of a received line that may be relayed: well-formed names, values without
    control characters (CR, LF, space and `;` are escaped on the way out), at most CLIENT_TAGS_MAX of them."""
    kept = {k: v for k, v in tags.items() if k.startswith("+") and _TAG_NAME.fullmatch(k)
            and not any(c < " " or c == "\x7f" for c in v if c not in "\r\n")}
    return dict(list(kept.items())[:CLIENT_TAGS_MAX]) or None


def _same(given: str | None, password: str) -> bool:
    """Is the PASS given the server password? Compared in constant time: the timing tells nothing of it."""
    return given is not None and hmac.compare_digest(given.encode(), password.encode())


def _in_batch(text: str) -> bool:
    """Is this rendered line inside a batch of its own already (a chathistory batch nested in a labeled one)?"""
    return text.startswith("@") and "batch=" in text.partition(" ")[0]


def _tagged(text: str, tag: str) -> str:
    """A rendered line (without CR LF) with one more tag."""
    return f"@{tag};{text[1:]}" if text.startswith("@") else f"@{tag} {text}"


def _prefix(nick: str, ops: list[str], voiced: list[str], every: bool) -> str:
    """A member's NAMES prefix: @ for ops, + for voiced (both with multi-prefix)."""
    if every:
        return ("@" if nick in ops else "") + ("+" if nick in voiced else "")
    return "@" if nick in ops else "+" if nick in voiced else ""


def _too_long(frame: str) -> bool:
    """Tags past TAGS_MAX bytes, or a body past BODY_MAX (the framer capped the whole line already)."""
    data = frame.encode()
    if data.startswith(b"@"):
        end = data.find(b" ")
        if end < 0 or end + 1 > mapping.TAGS_MAX:
            return end >= 0 or len(data) > mapping.TAGS_MAX
        data = data[end + 1:].lstrip(b" ")
    return len(data) > mapping.BODY_MAX


def _inside(messages: list[ev.ChatMessage], asked: _Asked | None) -> list[ev.ChatMessage]:
    """A history page cut to what a CHATHISTORY BETWEEN asked for."""
    if asked is None or asked.between is None:
        return messages
    kind, low, high = asked.between
    if kind == "msgid":
        return [x for x in messages if low < x.id < high]
    return [x for x in messages if low < millis(x.time) < high]


# the lists MODE #room +b (+I, +e) asks for: RoomModes' field, the numerics of an entry and of the end, the end's words
_LISTS = {"banlist": ("bans", "367", "368", "End of channel ban list"),
          "invexlist": ("invite_exceptions", "346", "347", "End of Channel Invite Exception List"),
          "exceptlist": ("ban_exceptions", "348", "349", "End of Channel Exception List")}


def _words_set(modes: str, words: Sequence[str]) -> dict[str, list[str]]:
    """The words a MODE line gives each letter it sets (+k KEY, +l N, +o NICK...), matched to its letters as
    cmd.Mode matches them."""
    found: dict[str, list[str]] = {}
    sign, rest = "+", list(words)
    for letter in modes:
        if letter in "+-":
            sign = letter
        elif cmd.MODE_LETTERS.get(letter) and not (letter in cmd.UNSET_WITHOUT_WORD and sign == "-") and rest:
            found.setdefault(letter, []).append(rest.pop(0))
    return found


def _reference(point: str) -> tuple[str, int] | None:
    """A CHATHISTORY reference: ("msgid", an id) or ("timestamp", milliseconds since 1970, UTC); None if neither."""
    kind, _, value = point.partition("=")
    if kind == "msgid" and value.isdigit():
        return kind, min(int(value), cmd.MESSAGE_ID_MAX)
    if kind == "timestamp":
        found = parse_millis(value)
        return None if found is None else (kind, found)
    return None


def _chunks(text: str) -> list[str]:
    """Message text as IRC lines: whole when an IRC client could have sent it, else in pieces of at most
    TEXT_CHUNK bytes, cut between characters (at a space where one is near)."""
    data = text.encode()
    if len(data) <= mapping.BODY_MAX:  # what an IRC client could have sent: one line, whatever the prefix adds
        return [text]
    parts: list[str] = []
    while data:
        cut = min(len(data), mapping.TEXT_CHUNK)
        if cut < len(data):
            while cut > 0 and (data[cut] & 0xC0) == 0x80:  # never inside a character
                cut -= 1
            space = data.rfind(b" ", 0, cut)
            if space > mapping.TEXT_CHUNK // 2:
                cut = space + 1
        parts.append(data[:cut].decode())
        data = data[cut:]
    return parts


_Handler = Callable[[IrcCodec, Message], Sequence[cmd.Command | ev.Event | Reply]]
_HANDLERS: dict[str, _Handler] = {
    "CAP": IrcCodec._cap, "NICK": IrcCodec._nick_command, "USER": IrcCodec._user_command, "PASS": IrcCodec._pass,
    "AUTHENTICATE": IrcCodec._authenticate, "JOIN": IrcCodec._join, "PART": IrcCodec._part,
    "PRIVMSG": IrcCodec._privmsg, "NOTICE": IrcCodec._privmsg, "TAGMSG": IrcCodec._tagmsg, "QUIT": IrcCodec._quit,
    "PING": IrcCodec._ping,
    "PONG": IrcCodec._pong, "TOPIC": IrcCodec._topic, "NAMES": IrcCodec._names, "WHO": IrcCodec._who,
    "LIST": IrcCodec._list, "WHOIS": IrcCodec._whois, "MODE": IrcCodec._mode, "KICK": IrcCodec._kick,
    "INVITE": IrcCodec._invite, "CHATHISTORY": IrcCodec._chathistory, "AWAY": IrcCodec._away,
    "MOTD": IrcCodec._motd, "LUSERS": IrcCodec._lusers, "USERHOST": IrcCodec._userhost, "WHOWAS": IrcCodec._whowas,
    "OPER": IrcCodec._oper, "KILL": IrcCodec._kill, "WALLOPS": IrcCodec._wallops, "TIME": IrcCodec._time,
    "INFO": IrcCodec._info, "LINKS": IrcCodec._links,
}
_OUR_VERB = {"PRIVMSG": "msg", "NOTICE": "msg", "PART": "leave", "NAMES": "who", "LIST": "rooms",
             "CHATHISTORY": "history", "AUTHENTICATE": "login"}

_RENDERERS: dict[type, Callable[[IrcCodec, Any], str]] = {
    ev.ChatMessage: IrcCodec._r_message, ev.Join: IrcCodec._r_join, ev.Joined: IrcCodec._r_joined,
    ev.History: IrcCodec._r_history, ev.PrivateHistory: IrcCodec._r_private_history, ev.Part: IrcCodec._r_part,
    ev.Quit: IrcCodec._r_quit, ev.NickChange: IrcCodec._r_nick, ev.Topic: IrcCodec._r_topic,
    ev.Who: IrcCodec._r_who, ev.RoomList: IrcCodec._r_rooms, ev.Pong: IrcCodec._r_pong,
    ev.Notice: IrcCodec._r_notice, ev.Help: IrcCodec._r_help, ev.Welcome: IrcCodec._r_welcome,
    ev.Error: IrcCodec._r_error, ev.Bye: IrcCodec._r_bye, ev.AccountChange: IrcCodec._r_account,
    ev.PasswordWanted: IrcCodec._r_password_wanted, ev.WhoIs: IrcCodec._r_whois, ev.Kick: IrcCodec._r_kick,
    ev.Mode: IrcCodec._r_mode, _Modes: IrcCodec._r_modes, ev.Invite: IrcCodec._r_invite,
    ev.RoomModes: IrcCodec._r_room_modes, ev.Away: IrcCodec._r_away, ev.Online: IrcCodec._r_online,
    ev.WhoWas: IrcCodec._r_whowas,
    ev.Operator: IrcCodec._r_operator, ev.UserModes: IrcCodec._r_user_modes, ev.Wallops: IrcCodec._r_wallops,
    ev.ServerTime: IrcCodec._r_time, ev.TagMessage: IrcCodec._r_tagmsg, ev.Targets: IrcCodec._r_targets,
}
