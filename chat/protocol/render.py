"""Render events as text lines (for people on `nc`) or as JSON lines (for clients and bots). Pure functions.

Every rendering ends with a newline. A text rendering may be several lines (a room list, help, a history
page); a JSON rendering is one object per line, and a history page is one line per message plus a
`history_end` line.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from chat.protocol.events import (
    AccountChange,
    Away,
    Bye,
    ChatMessage,
    Current,
    Error,
    Event,
    FormatChanged,
    Hello,
    Help,
    History,
    Invite,
    Join,
    Joined,
    Kick,
    MessageKind,
    Mode,
    NickChange,
    Notice,
    Online,
    Operator,
    Part,
    PasswordWanted,
    Person,
    Pong,
    PrivateHistory,
    Quit,
    RoomList,
    RoomModes,
    SearchResults,
    ServerTime,
    TagMessage,
    Targets,
    Topic,
    UserModes,
    Wallops,
    Welcome,
    Who,
    WhoIs,
    WhoWas,
)

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_line(obj: Any) -> str:
    """`obj` as one line of compact JSON (UTF-8 kept), no newline. JSON escapes the C0 controls itself; NEL,
    U+2028 and U+2029 are escaped here too, because `str.splitlines()` (and older JavaScript) end a line there."""
    text = _encode(obj)
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")
    return text


def iso_time(t: float) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2026-11-24T07:45:59.123Z."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def millis(t: float) -> int:
    """The millisecond `iso_time` shows for `t` (it truncates): what CHATHISTORY's timestamp= references compare."""
    return datetime_millis(datetime.fromtimestamp(t, UTC))


def datetime_millis(d: datetime) -> int:
    """A datetime's milliseconds since 1970 (UTC; a naive one, as SQLite hands back, is UTC), truncated, exactly."""
    return ((d if d.tzinfo else d.replace(tzinfo=UTC)) - _EPOCH) // _MILLISECOND


def parse_millis(text: str) -> int | None:
    """An ISO-8601 time (`2026-11-24T07:45:59.123Z`; no zone: UTC) as milliseconds since 1970; None if it is not
    one, or is outside years 1970-9999."""
    if len(text) > 40:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    ms = datetime_millis(found)
    return ms if ms >= 0 else None


def short_time(t: float) -> str:
    frac, whole = math.modf(t)
    return _short_time(int(whole) + (round(frac * 1e6) >= 1_000_000))  # fromtimestamp's microsecond rounding


@lru_cache(maxsize=4096)
def _short_time(second: int) -> str:
    # a join storm into a busy room renders the same backlog times again and again
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------------------------------- text


def render_text(event: Event) -> str:
    match event:
        case ChatMessage():
            return _text_message(event) + "\n"
        case Join(room, nick):
            return f"[#{room}] *** {nick} joined\n"
        case Part(room, nick, reason):
            return f"[#{room}] *** {nick} left{_why(reason)}\n"
        case Quit(nick, reason):
            return f"*** {nick} quit{_why(reason)}\n"
        case NickChange(old, new):
            return f"*** {old} is now known as {new}\n"
        case Current(None):
            return "*** You are in no room now.\n"
        case Current(room):
            return f"*** #{room} is now your current room.\n"
        case Joined(room, members, topic):
            count = _plural(event.count or len(members), "member")
            if event.quiet:
                count += "; joins and leaves are not announced here"
            about = f"Topic: {topic}" if topic else "No topic is set."
            return f"[#{room}] *** You joined #{room} ({count}). {about}\n"
        case History():
            return _text_history(event)
        case SearchResults():
            return _text_search(event)
        case Topic():
            return _text_topic(event)
        case Who(room, []):
            return f"[#{room}] *** Nobody is in #{room}.\n"
        case Who(room, members, ops, voiced):
            shown = ", ".join(_with_prefix(n, ops, voiced) for n in members)
            return f"[#{room}] *** {_plural(len(members), 'member')}: {shown}\n"
        case RoomList(rooms, total):
            if not rooms:
                return "*** No rooms have anyone in them.\n"
            shown = f"the {len(rooms)} busiest of {total} rooms" if total > len(rooms) else _plural(total, "room")
            lines = [f"*** {shown[0].upper()}{shown[1:]}:\n"]
            for r in rooms:
                topic = f": {r.topic}" if r.topic else ""
                lines.append(f"***   #{r.room} ({_plural(r.members, 'member')}){topic}\n")
            return "".join(lines)
        case Error(code, message):
            return f"[error {code.value}] {message}\n"
        case Notice(text):
            return f"*** {text}\n"
        case Hello(server, version, _):
            return f"*** Welcome to {server} {version}! Type a nickname and press Enter.\n"
        case Welcome(nick, _):
            return f"*** Welcome, {nick}! /help lists the commands, /quit leaves.\n"
        case Help(_, lines):
            return "".join(f"*** {line}\n" for line in lines)
        case Pong(token):
            return f"*** pong{' ' + token if token else ''}\n"
        case FormatChanged(fmt):
            return f"*** Output format is now {fmt}.\n"
        case Bye(reason, code, last_id):
            kept = f" Your last stored message was {last_id}." if last_id is not None else ""
            return f"*** Goodbye: {reason}{f' ({code.value})' if code else ''}{kept}\n"
        case AccountChange():
            return _text_account(event)
        case PasswordWanted(nick):
            return (f"*** {nick} is a registered nickname. Type its password on the next line, or choose another "
                    "nickname.\n")
        case WhoIs():
            return _text_whois(event)
        case PrivateHistory():
            return _text_private_history(event)
        case Kick(room, nick, by, reason):
            return f"[#{room}] *** {nick} was kicked by {by}{_why(reason)}\n"
        case Mode(room, nick, mode, target):
            return f"[#{room}] *** {nick} {_MODE_TEXT[mode].format(room=room, target=target)}\n"
        case Invite(room, nick, target):
            return f"*** {nick} invited {target} to #{room} (/join {room} to go in)\n"
        case RoomModes():
            return _text_room_modes(event)
        case WhoWas(nick, []):
            return f"*** Nobody called {nick} has gone lately.\n"
        case WhoWas(nick, people):
            was = "; ".join(f"user {p.user}, real name {p.realname}" for p in people)
            return f"*** {nick} was here lately: {was}\n"
        case Online(people, most, rooms):
            who = f"{people} {'person' if people == 1 else 'people'}"
            return f"*** {who} online (at most {most} since the server started), in {_plural(rooms, 'room')}.\n"
        case Away(nick, message, you, changed):
            if you:
                return f"*** You are marked as away: {message}\n" if message else "*** You are back (not away).\n"
            if changed and message is None:
                return f"*** {nick} is back.\n"
            return f"*** {nick} is away: {message}\n"
        case Operator(_, account):
            return f"*** You are a server operator now (the powers of the admin account {account}).\n"
        case UserModes(_, modes, change):
            if change:
                return f"*** Your user modes changed: {modes}\n"
            return f"*** Your user modes: {modes} (o: server operator, w: you receive /wallops)\n"
        case Wallops(nick, text):
            return f"*** WALLOPS from {nick}: {text}\n"
        case ServerTime(t):
            return f"*** The server's time: {short_time(t)} UTC\n"
        case Targets([]):
            return "*** No messages in your rooms or private conversations.\n"
        case Targets(targets):
            shown = ", ".join(f"#{x.room}" if x.room is not None else f"@{x.nick}" for x in targets)
            return f"*** Latest messages, oldest first: {shown}\n"
        case TagMessage():
            return ""  # tags without words: nothing for a person to read (JSON has them)
    raise TypeError(f"cannot render {event!r}")


_MODE_TEXT: dict[str, str] = {  # every ModeChange (chat.protocol.events)
    "+i": "made #{room} invite-only",
    "-i": "made #{room} open to everyone",
    "+k": "set a key on #{room} (a password to join)",
    "-k": "removed the key of #{room}",
    "+l": "limited #{room} to {target} members",
    "-l": "removed the member limit of #{room}",
    "+n": "let only members send to #{room}",
    "-n": "let anyone send to #{room}, members or not",
    "+s": "made #{room} secret: outsiders do not see it",
    "-s": "made #{room} no longer secret",
    "+t": "let only ops set the topic of #{room}",
    "-t": "let everyone set the topic of #{room}",
    "+m": "made #{room} moderated: only ops and voiced members may speak",
    "-m": "made #{room} unmoderated",
    "+o": "made {target} an op",
    "-o": "took ops from {target}",
    "+v": "gave {target} a voice",
    "-v": "took the voice of {target}",
    "+b": "banned {target}",
    "-b": "lifted the ban on {target}",
    "+I": "let {target} into #{room} uninvited while it is invite-only",
    "-I": "no longer lets {target} into #{room} uninvited",
    "+e": "let {target} into #{room} whatever its bans",
    "-e": "no longer spares {target} the bans of #{room}",
}


def _person(p: Person) -> dict[str, object]:
    return {"nick": p.nick, "user": p.user, "realname": p.realname, "away": p.away, "oper": p.oper}


def _with_prefix(nick: str, ops: list[str], voiced: list[str]) -> str:
    return f"@{nick}" if nick in ops else f"+{nick}" if nick in voiced else nick


def _text_account(a: AccountChange) -> str:
    if a.change == "registered":
        return (f"*** {a.account} is registered to you, and you are logged in. Next time, /login {a.account} "
                f"PASSWORD (or type {a.account}, then the password).\n")
    if a.change == "logged_in":
        return f"*** You are logged in as {a.account}.\n"
    if a.change == "logged_out":
        return f"*** You are logged out of {a.account}; you are now {a.nick}.\n"
    return f"*** The password of {a.account} is changed.\n"


def _text_whois(w: WhoIs) -> str:
    parts = [f"online, idle {_duration(w.idle)}" if w.online and w.idle is not None else
             "online" if w.online else "offline"]
    if not w.online and w.last_seen:
        parts[0] += f" (last seen {short_time(w.last_seen)} UTC)"
    if w.registered:
        since = f" since {short_time(w.registered_at)} UTC" if w.registered_at else ""
        parts.append(f"registered{since}")
    else:
        parts.append("not registered (a guest)")
    if w.admin:
        parts.append("a server operator")
    if w.person is not None and w.person.realname != w.nick:
        parts.append(f"real name {w.person.realname}")
    if w.rooms:
        parts.append(f"in {', '.join('#' + r for r in w.rooms)}")
    if w.person is not None and w.person.away:
        parts.append(f"away: {w.person.away}")
    return f"*** {w.nick}: {', '.join(parts)}\n"


def _duration(seconds: float | None) -> str:
    s = int(seconds or 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _text_private_history(h: PrivateHistory) -> str:
    if not h.messages:
        return "" if h.reason == "offline" else f"*** No earlier private messages with {h.nick}.\n"
    if h.reason == "around":
        return _text_private_around(h)
    lines = [f"[private] [{short_time(m.time)} history] {_said(m)}\n" for m in h.messages]
    if h.reason == "offline":
        lines.append(f"*** End of the private messages sent while you were away ({len(h.messages)}).\n")
    else:
        more = f"/history @{h.nick} shows older ones" if h.more else "that is the beginning of it"
        lines.append(f"*** End of history with {h.nick}: {_plural(len(h.messages), 'message')}; {more}.\n")
    return "".join(lines)


def _text_private_around(h: PrivateHistory) -> str:
    lines = []
    for m in h.messages:
        mark = f" #{m.id}" if m.id == h.around else ""
        lines.append(f"[private] [{short_time(m.time)} history{mark}] {_said(m)}\n")
    if not h.messages:
        return f"*** No private messages with {h.nick} around #{h.around}.\n"
    paging = _around_paging(f"@{h.nick}", h.messages, h.more, h.newer, "that is the beginning of it")
    lines.append(f"*** End of history with {h.nick} around #{h.around}: {_plural(len(h.messages), 'message')}; "
                 f"{paging}.\n")
    return "".join(lines)


def _text_room_modes(r: RoomModes) -> str:
    said = [_MODE_WORDS.get(c, c) for c in r.modes.lstrip("+")]
    if r.key:
        said = [f"key {r.key}" if s == "a key to join" else s for s in said]
    if r.limit is not None:
        said = [f"at most {r.limit} members" if s == "a member limit" else s for s in said]
    parts = [", ".join(said) if said else "no settings"]
    parts.append(f"owner {r.owner}" if r.owner else "no owner")
    for label, nicks in (("ops", r.ops), ("voiced", r.voiced), ("banned", r.bans), ("invited", r.invited),
                         ("invite exceptions", r.invite_exceptions), ("ban exceptions", r.ban_exceptions)):
        if nicks:
            parts.append(f"{label}: {', '.join(nicks)}")
    return f"[#{r.room}] *** #{r.room}: {'; '.join(parts)}\n"


_MODE_WORDS = {"i": "invite-only", "k": "a key to join", "l": "a member limit", "m": "moderated",
               "n": "no messages from outside", "s": "secret", "t": "only ops set the topic"}


def _text_message(m: ChatMessage) -> str:
    if m.kind is MessageKind.MESSAGE:
        return f"[#{m.room}] {m.nick}: {m.text}"
    if m.kind is MessageKind.ACTION:
        return f"[#{m.room}] * {m.nick} {m.text}"
    if m.kind is MessageKind.NOTICE:
        return f"[#{m.room}] -{m.nick}- {m.text}"
    return f"[private] {_said(m)}"


def _said(m: ChatMessage) -> str:
    """A private message's words after `[private]`: a notice's sender between dashes, as IRC clients show it."""
    return f"-{m.nick}- -> {m.to}: {m.text}" if m.notice else f"{m.nick} -> {m.to}: {m.text}"


def _room_body(m: ChatMessage) -> str:
    """A room message as history and search show it."""
    if m.kind is MessageKind.ACTION:
        return f"* {m.nick} {m.text}"
    return f"-{m.nick}- {m.text}" if m.notice else f"{m.nick}: {m.text}"


def _text_history(h: History) -> str:
    if h.reason == "around":
        return _text_around(h)
    if not h.messages:
        return "" if h.reason == "backlog" else f"[#{h.room}] *** No older messages.\n"
    lines = [_text_history_line(h.room, m) for m in h.messages]
    more = "/history shows older ones" if h.more else "that is the beginning of the room"
    lines.append(f"[#{h.room}] *** End of history: {_plural(len(h.messages), 'message')}; {more}.\n")
    return "".join(lines)


def _text_history_line(room: str, m: ChatMessage, marked: bool = False) -> str:
    body = _room_body(m)
    mark = f" #{m.id}" if marked else ""
    return f"[#{room}] [{short_time(m.time)} history{mark}] {body}\n"


def _text_around(h: History) -> str:
    """/history ROOM around ID: the message ID marked with its id, where to page on from either end."""
    if not h.messages:
        return f"[#{h.room}] *** No messages around #{h.around}.\n"
    found = any(m.id == h.around for m in h.messages)
    lines = [] if found else [f"[#{h.room}] *** Message #{h.around} is not in #{h.room}; the messages near it:\n"]
    lines += [_text_history_line(h.room, m, marked=m.id == h.around) for m in h.messages]
    paging = _around_paging(f"#{h.room}", h.messages, h.more, h.newer, "that is the beginning of the room")
    lines.append(f"[#{h.room}] *** End of history around #{h.around}: {_plural(len(h.messages), 'message')}; "
                 f"{paging}.\n")
    return "".join(lines)


def _around_paging(target: str, messages: list[ChatMessage], more: bool, newer: bool, beginning: str) -> str:
    """Where an /history ... around page goes on from, at either end."""
    older = f"/history {target} before {messages[0].id} shows older ones" if more else beginning
    later = f"/history {target} after {messages[-1].id} newer ones" if newer else "no newer ones"
    return f"{older}, {later}"


def _text_search(r: SearchResults) -> str:
    if not r.messages:
        return f"*** No results for {r.query}.\n"
    lines = [f"*** Search: {r.query}\n"]
    for m in r.messages:
        at = f"[{short_time(m.time)} #{m.id}]"
        if m.private:
            lines.append(f"[private] {at} {_said(m)}\n")
        else:
            lines.append(f"[#{m.room}] {at} {_room_body(m)}\n")
    more = f"/search {r.query} before {r.before} shows older ones" if r.more else "that is all"
    missing = " (older messages are still being indexed: some may be missing)" if r.indexing else ""
    lines.append(f"*** End of search: {_plural(len(r.messages), 'result')}; {more}.{missing}\n")
    return "".join(lines)


def _text_topic(t: Topic) -> str:
    if t.change:
        if t.topic:
            return f"[#{t.room}] *** {t.nick} set the topic: {t.topic}\n"
        return f"[#{t.room}] *** {t.nick} cleared the topic\n"
    if not t.topic:
        return f"[#{t.room}] *** No topic is set.\n"
    by = f" (set by {t.nick} on {short_time(t.time)} UTC)" if t.nick and t.time else ""
    return f"[#{t.room}] *** Topic: {t.topic}{by}\n"


def _why(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------------------------------------------- JSON


def render_json(event: Event) -> str:
    if isinstance(event, SearchResults):
        lines = [json_line(message_json(m, search=True)) for m in event.messages]
        end = {"type": "search_end", "query": event.query, "count": len(event.messages), "more": event.more,
               "before": event.before, "indexing": event.indexing}
        lines.append(json_line(end))
        return "\n".join(lines) + "\n"
    if isinstance(event, History):
        lines = [json_line(message_json(m, history=True)) for m in event.messages]
        end = {"type": "history_end", "room": event.room, "count": len(event.messages), "more": event.more,
               "reason": event.reason}
        if event.reason == "around":
            end |= {"around": event.around, "newer": event.newer}
        lines.append(json_line(end))
        return "\n".join(lines) + "\n"
    if isinstance(event, PrivateHistory):
        lines = [json_line(message_json(m, history=True)) for m in event.messages]
        end = {"type": "private_history_end", "nick": event.nick, "count": len(event.messages), "more": event.more,
               "reason": event.reason}
        if event.reason == "around":
            end |= {"around": event.around, "newer": event.newer}
        lines.append(json_line(end))
        return "\n".join(lines) + "\n"
    return json_line(event_json(event)) + "\n"


# a message kind's JSON type: a notice is a `message` or `private` with "notice": true (the type `notice` is the
# server's own words, and a client that knows nothing of notices shows them as messages)
_JSON_TYPES = {MessageKind.NOTICE: MessageKind.MESSAGE.value, MessageKind.PRIVATE_NOTICE: MessageKind.PRIVATE.value}


def message_json(m: ChatMessage, history: bool = False, search: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {"type": _JSON_TYPES.get(m.kind, m.kind.value), "id": m.id, "time": iso_time(m.time)}
    if m.private:
        obj["nick"] = m.nick
        obj["to"] = m.to
    else:
        obj["room"] = m.room
        obj["nick"] = m.nick
    obj["text"] = m.text
    if m.notice:
        obj["notice"] = True
    if history:
        obj["history"] = True
    if search:
        obj["search"] = True
    return obj


def event_json(event: Event) -> dict[str, Any]:
    match event:
        case ChatMessage():
            return message_json(event)
        case Join(room, nick, t, away):
            return {"type": "join", "room": room, "nick": nick, "time": iso_time(t), "away": away}
        case Part(room, nick, reason, t):
            return {"type": "part", "room": room, "nick": nick, "reason": reason, "time": iso_time(t)}
        case Quit(nick, reason, t):
            return {"type": "quit", "nick": nick, "reason": reason, "time": iso_time(t)}
        case NickChange(old, new, t):
            return {"type": "nick", "old": old, "new": new, "time": iso_time(t)}
        case Current(room):
            return {"type": "current", "room": room}
        case Joined(room, members, topic, t, ops, voiced, quiet, count, topic_by, topic_at, secret):
            return {"type": "joined", "room": room, "members": members, "topic": topic, "time": iso_time(t),
                    "ops": ops, "voiced": voiced, "quiet": quiet, "count": count or len(members),
                    "topic_by": topic_by, "topic_at": iso_time(topic_at) if topic_at is not None else None,
                    "secret": secret}
        case Topic(room, topic, nick, t, change):
            return {"type": "topic", "room": room, "topic": topic, "nick": nick,
                    "time": iso_time(t) if t is not None else None, "change": change}
        case Who(room, members, ops, voiced, people, mask, secret):
            return {"type": "who", "room": room, "members": members, "ops": ops, "voiced": voiced,
                    "people": [_person(p) for p in people], "mask": mask, "secret": secret}
        case RoomList(rooms, total):
            return {"type": "rooms", "total": total,
                    "rooms": [{"room": r.room, "members": r.members, "topic": r.topic} for r in rooms]}
        case Error(code, message, command, subject, room):
            return {"type": "error", "code": code.value, "message": message, "command": command, "subject": subject,
                    "room": room}
        case Notice(text):
            return {"type": "notice", "text": text}
        case Hello(server, version, max_line):
            return {"type": "hello", "server": server, "version": version, "max_line": max_line}
        case Welcome(nick, max_line, online):
            return {"type": "welcome", "nick": nick, "max_line": max_line,
                    "online": event_json(online) if online is not None else None}
        case Help(command, lines):
            return {"type": "help", "command": command, "lines": lines}
        case Pong(token):
            return {"type": "pong", "token": token}
        case FormatChanged(fmt):
            return {"type": "format", "format": fmt}
        case Bye(reason, code, last_id):
            return {"type": "bye", "reason": reason, "code": code.value if code else None, "last_id": last_id}
        case AccountChange(change, account, nick):
            return {"type": "account", "change": change, "account": account, "nick": nick}
        case PasswordWanted(nick):
            return {"type": "password_wanted", "nick": nick}
        case WhoIs(nick, online, registered, registered_at, last_seen, idle, rooms, admin, person, signed_on, op_in,
                   voiced_in):
            return {"type": "whois", "nick": nick, "online": online, "registered": registered,
                    "registered_at": iso_time(registered_at) if registered_at else None,
                    "last_seen": iso_time(last_seen) if last_seen else None,
                    "idle": round(idle) if idle is not None else None, "rooms": rooms, "admin": admin,
                    "person": _person(person) if person else None,
                    "signed_on": iso_time(signed_on) if signed_on else None, "op_in": op_in, "voiced_in": voiced_in}
        case Kick(room, nick, by, reason, t):
            return {"type": "kick", "room": room, "nick": nick, "by": by, "reason": reason, "time": iso_time(t)}
        case Mode(room, nick, mode, target, t):
            return {"type": "mode", "room": room, "nick": nick, "mode": mode, "target": target, "time": iso_time(t)}
        case Invite(room, nick, target):
            return {"type": "invite", "room": room, "nick": nick, "target": target}
        case WhoWas(nick, people):
            return {"type": "whowas", "nick": nick, "people": [_person(p) for p in people]}
        case Online(people, most, rooms):
            return {"type": "online", "people": people, "most": most, "rooms": rooms}
        case Away(nick, message, you, changed):
            return {"type": "away", "nick": nick, "message": message, "you": you, "changed": changed}
        case RoomModes(room, modes, owner, key, ops, voiced, bans, invited, created_at, limit, invexes, excepts):
            return {"type": "room_modes", "room": room, "modes": modes, "owner": owner, "key": key, "ops": ops,
                    "voiced": voiced, "bans": bans, "invited": invited,
                    "created_at": iso_time(created_at) if created_at is not None else None, "limit": limit,
                    "invite_exceptions": invexes, "ban_exceptions": excepts}
        case Operator(nick, account):
            return {"type": "operator", "nick": nick, "account": account}
        case UserModes(nick, modes, change):
            return {"type": "user_modes", "nick": nick, "modes": modes, "change": change}
        case Wallops(nick, text, t):
            return {"type": "wallops", "nick": nick, "text": text, "time": iso_time(t)}
        case ServerTime(t):
            return {"type": "time", "time": iso_time(t)}
        case Targets(targets):
            return {"type": "targets", "targets": [{"room": x.room, "nick": x.nick, "time": iso_time(x.time)}
                                                   for x in targets]}
        case TagMessage(mid, nick, tags, t, room, to):
            return {"type": "tagmsg", "id": mid, "nick": nick, "tags": tags, "time": iso_time(t), "room": room,
                    "to": to}
    raise TypeError(f"cannot render {event!r}")
