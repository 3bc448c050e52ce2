"""Rooms with owners: who may do what in a room, and the commands of its ops (/op /deop /kick /ban /unban
/invite /mode). On the event-loop thread, like every service.

The rules, in one place:
- A new room's first member becomes its owner if logged in; a room a guest made has no owner (nor do rooms made
  before accounts existed). An unowned room works as every room always did: anyone in it may set its topic and
  nobody can kick or ban anyone, except a server admin, who may give it ops and settings like any room's.
- The owner is always an op; stored ops are accounts (a guest's nick is anyone's once they leave). Server admins have
  ops' powers in every room, and come in whatever its settings.
- Ops kick, ban (an account, or a guest's nick: the nick cannot be used in the room, and a ban puts them out),
  invite, give ops and voice, and set the modes: +i invite-only, +k a key to join, +l a member limit, +m
  moderated (only ops and voiced members speak), +n no messages from outside (on unless set off), +s secret,
  +t only ops set the topic. Nobody but an admin acts on the owner or on an admin.
- On an invite-only room anyone may be invited by its ops; elsewhere any member may invite (the invite then
  spares the key and the limit). An invited account stays invited (the room's invite list); a guest's invite
  admits them once.
- Those who may not join a room never get its backlog or its history (a full room's history stays readable: the
  limit counts members, not readers), and outsiders do not see a hidden room (invite-only or secret) in /rooms,
  its members in /who or /whois, or its topic.
- Only members speak in a room (+n), unless its ops set -n: then anyone online who is not banned may send to it
  from outside (/msg #room), and the message is the room's like any other (stored, in its history).
- Session ops (IRC's rule, for every door): the first member into a room that has no owner (nor stored ops)
  is its op for as long as it stays in (the lobby excepted: the server's room). So is a guest given ops (+o,
  /op) by an op, while in the room; likewise a guest given a voice. Session ops are kept in memory only.
- What a session op does in a room without an owner (its modes, bans, invites, ops given) lasts only while the
  room is in memory, i.e. while someone is in it, as an IRC channel's modes do: it is not stored, and the room
  comes back with what its database row says. Everything else is stored (chat.storage: rooms' settings,
  room_roles) and comes back with the room (FoundRoom): acts of owners, stored ops and admins, and in an owned
  room the acts of anyone its ops made session ops.
"""

from __future__ import annotations

import typing
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from chat.protocol import commands as cmd
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import Invite, Kick, Mode, ModeChange, Notice, RoomModes
from chat.protocol.masks import is_mask, list_entry
from chat.protocol.names import check_room, name_key
from chat.server.member import Member
from chat.server.outbox import Outbox
from chat.server.reads import TargetRead
from chat.server.state import LISTED, Room
from chat.storage.records import Role, RoleChange, RoomSettings, SettingsChange, StoredAccount, StoredRole

if TYPE_CHECKING:
    from chat.server.service import ChatService


def is_admin(m: Member) -> bool:
    """A server admin: a server operator (Member.operator: logged in to an admin account, or by /oper)."""
    return m.operator


def is_room_op(m: Member, room: Room) -> bool:
    """The room's owner, one of its ops or one of its session ops (what /who marks with @)."""
    if m in room.session_ops:
        return True
    account = m.account
    return account is not None and (account.id == room.settings.owner_id or account.id in room.ops)


def takes_session_op(room: Room) -> bool:
    """Does the first member into `room` become its session op? When nobody owns it or is its stored op."""
    return room.settings.owner_id is None and not room.ops


def stores_acts(m: Member, room: Room) -> bool:
    """Are `m`'s acts as an op in `room` stored? Yes, but a session op's in a room without an owner."""
    account = m.account
    return room.settings.owner_id is not None or is_admin(m) or (account is not None and account.id in room.ops)


def may_moderate(m: Member, room: Room) -> bool:
    return is_room_op(m, room) or is_admin(m)


def is_voiced(m: Member, room: Room) -> bool:
    return m in room.session_voiced or (m.account is not None and m.account.id in room.voiced)


def invite_of(m: Member, room: Room) -> StoredRole | None:
    """The invite that lets `m` in, if any: its account's, or (for a guest) one for its nick."""
    invite = room.invites.get(m.key)
    if invite is None:
        return None
    if invite.account_id is None:
        return invite if m.account is None else None
    return invite if m.account is not None and m.account.id == invite.account_id else None


def check_join(m: Member, room: Room, key: str | None) -> StoredRole | None:
    """Raise why `m` may not join `room` (given `key`); return the guest invite the join uses up, if any."""
    invite = check_entry(m, room, key)
    limit = room.settings.limit
    if limit is not None and invite_of(m, room) is None and not may_moderate(m, room) and room.size() >= limit:
        raise ChatError(ErrorCode.ROOM_FULL, f"#{room.name} is full: it takes at most {limit} members.",
                        subject=room.name)
    return invite


def check_entry(m: Member, room: Room, key: str | None) -> StoredRole | None:
    """check_join but for the member limit: raise why `m` may not come in; return the guest invite it uses up."""
    if may_moderate(m, room):
        return None
    settings = room.settings
    if is_banned(m, room):
        raise ChatError(ErrorCode.BANNED, f"You are banned from #{room.name}.", subject=room.name)
    invite = invite_of(m, room)
    if settings.invite_only and invite is None and not on_list(m, room, "invex"):
        raise ChatError(ErrorCode.INVITE_ONLY, f"#{room.name} is invite-only: ask one of its ops to /invite you.",
                        subject=room.name)
    if settings.key is not None and invite is None and key != settings.key:
        said = "That is not the key" if key else "You need the key"
        raise ChatError(ErrorCode.BAD_KEY, f"{said} of #{room.name}: /join {room.name} KEY.", subject=room.name)
    return invite if invite is not None and invite.account_id is None else None


def check_read(m: Member, room: Room) -> None:
    """Raise unless `m` may read `room`'s history: it is in it, or could join it without a key (were it not full)."""
    if any(x is m for x in room.members):
        return
    check_entry(m, room, None)


def may_search(m: Member, room: Room) -> bool:
    """Does /search show `m` the messages of `room` (in memory, with its settings as they are now)? Its own
    rooms, and those it could read without joining but secret ones."""
    if room.key in m.rooms or may_moderate(m, room):
        return True
    if room.settings.secret:
        return False
    try:
        check_entry(m, room, None)
    except ChatError:
        return False
    return True


LIST_LETTERS: dict[str, Literal["ban", "invex", "except"]] = {"b": "ban", "I": "invex", "e": "except"}  # +b +I +e
MASKS_MAX = 100  # masks in one room's list of one role (+b, +e, +I): each costs every join a match


def on_list(m: Member, room: Room, role: Literal["ban", "invex", "except"]) -> bool:
    """Is `m` on the room's list of `role`: by its nick, or matched by one of the list's masks?"""
    return m.key in room.role_list(role, m.key) or (bool(room.masks.get(role)) and room.matched(role, m.mask_subject()))


def is_banned(m: Member, room: Room) -> bool:
    """A ban holds `m` (by its nick, its account's nick, or a mask) and no ban exception (+e) spares it."""
    return on_list(m, room, "ban") and not on_list(m, room, "except")


def may_see(m: Member, room: Room) -> bool:
    """Does `m` see a hidden (invite-only or secret) room's members and topic (and the room in /rooms)?"""
    return (not room.settings.hidden or room.key in m.rooms or may_moderate(m, room)
            or invite_of(m, room) is not None)


def check_speak(m: Member, room: Room) -> None:
    """Raise unless `m` may send to `room`: from inside (but +m), or from outside a -n room (but +m, or banned)."""
    if room.key not in m.rooms:
        if room.settings.no_external:
            # the words of a room nobody is in (service._speaking_room): a hidden room's existence stays unsaid
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{room.name}; /join it first.", subject=room.name)
        if is_banned(m, room):
            raise ChatError(ErrorCode.BANNED, f"You are banned from #{room.name}.", subject=room.name)
    elif room.masks.get("ban") and is_banned(m, room) and not (is_voiced(m, room) or may_moderate(m, room)):
        # a mask ban does not put out the members it matches (as on IRC: the ops KICK whom they mean); they
        # stay, silent, unless voiced
        raise ChatError(ErrorCode.BANNED, f"You are banned from #{room.name}: you may not speak in it.",
                        subject=room.name)
    if room.settings.moderated and not (is_voiced(m, room) or may_moderate(m, room)):
        raise ChatError(ErrorCode.MODERATED, f"#{room.name} is moderated: only its ops and voiced members may "
                        "speak.", subject=room.name)


def check_topic(m: Member, room: Room) -> None:
    if room.settings.topic_ops_only and not may_moderate(m, room):
        raise ChatError(ErrorCode.NOT_OP, f"Only the ops of #{room.name} may set its topic.", subject=room.name)


def ops_of(room: Room, logged_in: dict[str, Member]) -> tuple[list[str], list[str]]:
    """The nicks of the room's members who are its ops, and of those who are voiced, sorted. Found from the room's
    few ops and voiced accounts, not by a pass over its members: a join into a room of thousands stays cheap."""

    def present(accounts: dict[int, str]) -> list[str]:
        found = []
        for account_id, nick in accounts.items():
            m = logged_in.get(name_key(nick))
            if m is not None and m.account is not None and m.account.id == account_id and room.key in m.rooms:
                found.append(m.nick)
        return sorted(found, key=str.lower)

    def with_session(found: list[str], session: set[Member]) -> list[str]:
        if not session:
            return found
        return sorted({*found, *(x.nick for x in session)}, key=str.lower)

    settings = room.settings
    ops = dict(room.ops)
    if settings.owner_id is not None and settings.owner_nick is not None:
        ops[settings.owner_id] = settings.owner_nick
    return with_session(present(ops), room.session_ops), with_session(present(room.voiced), room.session_voiced)


# each setting's letter, and its field of RoomSettings
_SETTINGS = {"i": "invite_only", "k": "key", "l": "limit", "m": "moderated", "n": "no_external", "s": "secret",
             "t": "topic_ops_only"}


class Moderation:
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat
        self.state = chat.state

    # ------------------------------------------------------------------------------------------ commands

    def op(self, m: Member, name: str, nick: str, give: bool, out: Outbox) -> None:
        room = self._room(m, name)
        self._op(m, room, nick, give, out)

    def kick(self, m: Member, name: str, nick: str, reason: str | None, out: Outbox) -> None:
        room = self._room(m, name)
        remote = self._remote_in(room, nick)
        if remote is not None:  # a member of another node (clustered): its node removes it, seeing the kick
            self._protect_remote(m, room, remote)
            self._put_out(m, room, None, remote, reason, out)
            return
        target = self._member_in(room, nick)
        self._protect(m, room, target)
        self._put_out(m, room, target, target.nick, reason, out)

    def ban(self, m: Member, name: str, nick: str, set_ban: bool, out: Outbox) -> None:
        room = self._room(m, name)
        self._ban(m, room, nick, set_ban, out)

    def invite(self, m: Member, nick: str, name: str, out: Outbox) -> None:
        room_name = check_room(name)
        room = self.state.rooms.get(name_key(room_name))
        if room is None or (room.key not in m.rooms and not is_admin(m)):
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You must be in #{room_name} to invite someone to it.",
                            subject=room_name)
        if room.settings.invite_only and not may_moderate(m, room):
            raise ChatError(ErrorCode.NOT_OP, f"#{room.name} is invite-only: only its ops may invite.",
                            subject=room.name)
        target = self.state.nicks.get(name_key(nick))
        if target is None and self._ask_target(m, room, nick, "invite", True, out):
            return
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {nick} is online.", subject=nick)
        if is_banned(target, room):
            raise ChatError(ErrorCode.BANNED, f"{target.nick} is banned from #{room.name}: /unban them first.",
                            subject=target.nick)
        if room.key in target.rooms:
            raise ChatError(ErrorCode.ALREADY_IN_ROOM, f"{target.nick} is in #{room.name} already.",
                            subject=target.nick, room=room.name)
        account = target.account
        self._set_role(room, "invite", target.nick, target.key, account.id if account else None, m, True, out,
                       stores_acts(m, room))
        invite = Invite(room.name, m.nick, target.nick)
        out.reply(m, invite)  # one delivery each: IRC tells the inviter 341 and the invited an INVITE line
        if target is not m:
            out.reply(target, invite)

    def mode(self, m: Member, c: cmd.Mode, out: Outbox) -> None:
        room_name = check_room(c.room)
        room = self.state.rooms.get(name_key(room_name))
        if room is None:
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"Nobody is in #{room_name}.", subject=room_name)
        if room.key not in m.rooms and not is_admin(m):
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{room_name}; /join it first.",
                            subject=room_name)
        changes = c.changes()
        if not changes:
            out.reply(m, self.modes_of(m, room))
            return
        self._require_op(m, room)
        settings = room.settings
        before = replace(settings)
        lasting = stores_acts(m, room)
        if not lasting and room.kept_settings is None:
            room.kept_settings = replace(settings)  # what the database keeps meanwhile
        kept = room.kept_settings
        for change, word in changes:
            sign, letter = change[0] == "+", change[1]
            match letter:
                case "o":
                    self._op(m, room, word or "", sign, out)
                case "v":
                    self._voice(m, room, word or "", sign, out)
                case "b":
                    self._ban(m, room, word or "", sign, out)
                case "I" | "e":
                    self._list_entry(m, room, LIST_LETTERS[letter], word or "", sign, out)
                case "i" | "k" | "l" | "m" | "n" | "s" | "t":
                    if self.set_mode(settings, letter, sign, word):
                        shown = typing.cast(ModeChange, change)  # a change cmd.Mode parsed: one of them
                        limit = word if letter == "l" and sign else None  # a key is never broadcast
                        self._tell_mode(m, room, shown, limit, out, {"word": word, "lasting": lasting})
                    if lasting and kept is not None:
                        self.set_mode(kept, letter, sign, word)
        if settings != before:
            self.state.mark_hidden(room)
            if lasting:
                out.store_room(room)
                out.writes.settings.append(SettingsChange(room.id, replace(kept or settings)))

    def modes_of(self, m: Member, room: Room) -> RoomModes:
        settings = room.settings
        ops = sorted({*room.ops.values(), *([settings.owner_nick] if settings.owner_nick else []),
                      *(x.nick for x in room.session_ops)}, key=str.lower)
        shown = may_moderate(m, room)  # the key, the bans and the invite list are the ops' business
        return RoomModes(room.name, settings.modes, settings.owner_nick, settings.key if shown else None, ops,
                         sorted({*room.voiced.values(), *(x.nick for x in room.session_voiced)}, key=str.lower),
                         self._shown_list(room, "ban", room.bans) if shown else [],
                         sorted((i.nick for i in room.invites.values()), key=str.lower) if shown else [],
                         room.created_at, settings.limit,
                         self._shown_list(room, "invex", room.invexes) if shown else [],
                         self._shown_list(room, "except", room.excepts) if shown else [])

    @staticmethod
    def _shown_list(room: Room, role: Role, nicks: dict[str, StoredRole]) -> list[str]:
        """A list as /mode shows it to ops: its nicks, then its masks, each sorted."""
        masks = room.masks.get(role, {})
        return [*sorted((e.nick for e in nicks.values()), key=str.lower), *sorted(e.nick for e in masks.values())]

    def used_invite(self, room: Room, invite: StoredRole, m: Member, out: Outbox) -> None:
        """A guest joined on its one-time invite: it is spent."""
        self._set_role(room, "invite", invite.nick, invite.nick_key, None, m, False, out)

    def target_read(self, read: TargetRead, out: Outbox) -> None:
        """A clustered /op, +v or /invite of a member of another node, read: done as for one of this node's
        (the checks again, as things may have changed meanwhile). A stored role travels as a `role` event; a
        session op or voice (a guest's, or in a room without an owner) as a `mode` event marked `session`, which
        the target's node applies to its member."""
        m = read.member
        try:
            room = self.state.rooms.get(read.room_key)
            if room is None or (room.key not in m.rooms and not is_admin(m)):
                raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{read.room_key}; /join it first.",
                                subject=read.room_key)
            if read.error is not None:
                raise ChatError(ErrorCode.HISTORY_UNAVAILABLE, "The database cannot be reached: try again.")
            nick = read.nick
            if nick is None and read.action == "invite" and read.key not in self.state.nicks:
                raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {read.key} is online.", subject=read.key)
            if nick is None or read.key in self.state.nicks:  # gone, or here now: as for one of this node's
                nick = nick or read.key
                if read.action == "invite":
                    self.invite(m, nick, room.name, out)
                else:
                    self._remote_change(m, room, nick, None, read, out, local=True)
                return
            if read.action == "invite":
                self._invite_remote(m, room, nick, read.key, read.account, out)
            else:
                self._remote_change(m, room, nick, read.account, read, out)
        except ChatError as e:
            e.command = e.command or ("invite" if read.action == "invite" else "mode")
            self.chat.refused(m, e, out)

    def _remote_change(self, m: Member, room: Room, nick: str, account: StoredAccount | None, read: TargetRead,
                       out: Outbox, local: bool = False) -> None:
        op = read.action == "op"
        if local or self._remote_in(room, nick) is None:  # no longer another node's member of the room
            (self._op if op else self._voice)(m, room, nick, read.give, out, ask=False)
            return
        self._require_op(m, room)
        change: ModeChange = ("+" if read.give else "-") + ("o" if op else "v")  # type: ignore[assignment]
        roles = room.ops if op else room.voiced
        if account is None or not stores_acts(m, room):  # a session op or voice, of its node's member
            self._tell_mode(m, room, change, nick, out, {"session": True})
            return
        if read.give:
            if account.id in roles or (op and account.id == room.settings.owner_id):
                return  # nothing changes
            roles[account.id] = account.nick
            self._set_role(room, "op" if op else "voice", account.nick, account.key, account.id, m, True, out)
        else:
            if op and account.id == room.settings.owner_id:
                raise ChatError(ErrorCode.PROTECTED, f"{nick} owns #{room.name}: an owner is always an op.",
                                subject=nick)
            if roles.pop(account.id, None) is None:
                self._tell_mode(m, room, change, nick, out, {"session": True})  # a session op of its node's
                return
            self._set_role(room, "op" if op else "voice", account.nick, account.key, account.id, m, False, out)
        self._tell_mode(m, room, change, account.nick, out)

    def _invite_remote(self, m: Member, room: Room, nick: str, key: str, account: StoredAccount | None,
                       out: Outbox) -> None:
        if room.settings.invite_only and not may_moderate(m, room):
            raise ChatError(ErrorCode.NOT_OP, f"#{room.name} is invite-only: only its ops may invite.",
                            subject=room.name)
        if key in room.bans:
            raise ChatError(ErrorCode.BANNED, f"{nick} is banned from #{room.name}: /unban them first.", subject=nick)
        if key in room.remote:
            raise ChatError(ErrorCode.ALREADY_IN_ROOM, f"{nick} is in #{room.name} already.", subject=nick,
                            room=room.name)
        # the target's node tells it (an `invite` event) when it applies the role event
        self._set_role(room, "invite", nick, key, account.id if account else None, m, True, out,
                       stores_acts(m, room))
        out.reply(m, Invite(room.name, m.nick, nick))

    # ------------------------------------------------------------------------------------------ the work

    def _ask_target(self, m: Member, room: Room, nick: str, action: Literal["op", "voice", "invite"], give: bool,
                    out: Outbox) -> bool:
        """Clustered: a nick nobody here holds is looked up on the other nodes (answered in `target_read`)."""
        if not self.chat.cluster or not self.chat.config.node:
            return False
        out.ask(TargetRead(m, room.key, name_key(nick), action, give, self.chat.config.node), m)
        return True

    def _op(self, m: Member, room: Room, nick: str, give: bool, out: Outbox, ask: bool = True) -> None:
        self._require_op(m, room)
        key = name_key(nick)
        if ask and self._remote_in(room, nick) is not None and self._ask_target(m, room, nick, "op", give, out):
            return
        if give:
            target = self._online(nick)
            account = target.account
            if account is None or not stores_acts(m, room):  # an op for as long as it is in the room
                if is_room_op(target, room):
                    return
                self._member_in(room, target.nick)
                room.session_ops.add(target)
                self._tell_mode(m, room, "+o", target.nick, out)
                return
            if account.id == room.settings.owner_id or account.id in room.ops:
                return  # nothing changes
            room.ops[account.id] = account.nick
            self._set_role(room, "op", account.nick, account.key, account.id, m, True, out)
            shown = account.nick
        else:
            if room.settings.owner_id is not None and key == name_key(room.settings.owner_nick or ""):
                raise ChatError(ErrorCode.PROTECTED, f"{nick} owns #{room.name}: an owner is always an op.",
                                subject=nick)
            session = next((x for x in room.session_ops if x.key == key), None)
            if session is not None:
                room.session_ops.discard(session)
            found = next(((i, n) for i, n in room.ops.items() if name_key(n) == key), None)
            if found is None:
                if session is not None:
                    self._tell_mode(m, room, "-o", session.nick, out)
                return
            del room.ops[found[0]]
            self._set_role(room, "op", found[1], key, found[0], m, False, out)
            shown = found[1]
        self._tell_mode(m, room, "+o" if give else "-o", shown, out)

    def _voice(self, m: Member, room: Room, nick: str, give: bool, out: Outbox, ask: bool = True) -> None:
        key = name_key(nick)
        if ask and self._remote_in(room, nick) is not None and self._ask_target(m, room, nick, "voice", give, out):
            return
        if give:
            target = self._online(nick)
            account = target.account
            if account is None or not stores_acts(m, room):  # a voice for as long as it is in the room
                if is_voiced(target, room):
                    return
                self._member_in(room, target.nick)
                room.session_voiced.add(target)
                self._tell_mode(m, room, "+v", target.nick, out)
                return
            if account.id in room.voiced:
                return
            room.voiced[account.id] = account.nick
            self._set_role(room, "voice", account.nick, account.key, account.id, m, True, out)
            shown = account.nick
        else:
            session = next((x for x in room.session_voiced if x.key == key), None)
            if session is not None:
                room.session_voiced.discard(session)
            found = next(((i, n) for i, n in room.voiced.items() if name_key(n) == key), None)
            if found is None:
                if session is not None:
                    self._tell_mode(m, room, "-v", session.nick, out)
                return
            del room.voiced[found[0]]
            self._set_role(room, "voice", found[1], key, found[0], m, False, out)
            shown = found[1]
        self._tell_mode(m, room, "+v" if give else "-v", shown, out)

    def _ban(self, m: Member, room: Room, word: str, set_ban: bool, out: Outbox) -> None:
        self._require_op(m, room)
        nick, key = list_entry(word)  # a nick (as /ban's), or a mask
        if is_mask(key):
            self._list_entry(m, room, "ban", nick, set_ban, out)
            return
        lasting = stores_acts(m, room)
        if not set_ban:
            ban = room.bans.pop(key, None)
            if ban is None:
                out.reply(m, Notice(f"{nick} is not banned from #{room.name}."))
                return
            self._set_role(room, "ban", ban.nick, key, ban.account_id, m, False, out, lasting)
            self._tell_mode(m, room, "-b", ban.nick, out)
            return
        target = self.state.nicks.get(key)
        if target is not None:
            self._protect(m, room, target)
        elif (remote := self._remote_in(room, nick)) is not None:
            self._protect_remote(m, room, remote)
        elif key == name_key(room.settings.owner_nick or "") and not is_admin(m):
            raise ChatError(ErrorCode.PROTECTED, f"{nick} owns #{room.name}.", subject=nick)
        if key in room.bans:
            return
        account = target.account if target is not None else None
        shown = target.nick if target is not None else nick
        self._set_role(room, "ban", shown, key, account.id if account else None, m, True, out, lasting)
        if (invite := room.invites.pop(key, None)) is not None:  # a ban outweighs an invite: it goes
            self._set_role(room, "invite", invite.nick, key, invite.account_id, m, False, out, lasting)
        self._tell_mode(m, room, "+b", shown, out)
        if target is not None and room.key in target.rooms:
            self._put_out(m, room, target, target.nick, "banned", out)
        elif (remote := self._remote_in(room, nick)) is not None:
            self._put_out(m, room, None, remote, "banned", out)

    def _list_entry(self, m: Member, room: Room, role: Literal["ban", "invex", "except"], word: str,
                    granted: bool, out: Outbox) -> None:
        """An entry (a nick or a mask) put on or taken off a list that holds no account: a mask ban (+b; a nick's
        ban is `_ban`'s), an invite exception (+I: may come into the room while it is invite-only, uninvited,
        as often as it likes; a ban still keeps it out) or a ban exception (+e: a ban does not hold it)."""
        nick, key = list_entry(word)
        entries = room.role_list(role, key)
        entry = entries.get(key)
        if granted == (entry is not None):
            return  # already so: nothing to tell
        if granted and is_mask(key) and len(entries) >= MASKS_MAX:
            raise ChatError(ErrorCode.LIST_FULL, f"#{room.name} has {MASKS_MAX} such masks already: take one "
                            "off first.", subject=room.name)
        shown = entry.nick if entry is not None else nick
        self._set_role(room, role, shown, key, None, m, granted, out, stores_acts(m, room))
        letter = next(k for k, v in LIST_LETTERS.items() if v == role)
        self._tell_mode(m, room, typing.cast(ModeChange, ("+" if granted else "-") + letter), shown, out)

    def _set_role(self, room: Room, role: Role, nick: str, key: str, account_id: int | None, by: Member,
                  granted: bool, out: Outbox, lasting: bool = True) -> None:
        now = self.chat.clock()
        if granted and role in LISTED:
            room.put_entry(StoredRole(role, nick, key, account_id, by.nick, now))
        elif not granted and role in LISTED:
            room.drop_entry(role, key)
        if self.chat.cluster:  # the other nodes' copy of the room changes with it (chat.server.cluster)
            self.chat.room_event(room, "role", nick, out, {"role": role, "key": key, "account": account_id,
                                                           "granted": granted, "by": by.nick, "time": now})
        if not lasting:  # a session op's, in a room without an owner: it ends with the room's time in memory
            return
        out.store_room(room)
        out.writes.roles.append(RoleChange(room.id, role, nick, key, account_id, by.nick, now, granted))

    def _tell_mode(self, m: Member, room: Room, change: ModeChange, target: str | None, out: Outbox,
                   data: dict[str, object] | None = None) -> None:
        """A mode change shown to the room, here and (clustered) on the other nodes; a setting's (+i +t +m +k)
        carries its word and whether it is stored (`lasting`), for the other nodes to change their copy."""
        now = self.chat.clock()
        out.deliver(room.members, Mode(room.name, m.nick, change, target, now))
        if self.chat.cluster:
            self.chat.room_event(room, "mode", m.nick, out, {"change": change, "target": target, "time": now,
                                                              **(data or {})})

    def _put_out(self, m: Member, room: Room, target: Member | None, nick: str, reason: str | None,
                 out: Outbox) -> None:
        """`nick` is kicked out of `room`: `target` here, or (None) a member of another node, which its node
        removes when it sees the kick."""
        now = self.chat.clock()
        out.deliver(room.members, Kick(room.name, nick, m.nick, reason, now))
        if self.chat.cluster:
            self.chat.room_event(room, "kick", nick, out, {"by": m.nick, "reason": reason, "time": now})
        if target is not None:
            self.chat.remove_from_room(target, room, out, told_others=True)
        else:
            room.remote.pop(name_key(nick), None)

    @staticmethod
    def set_mode(settings: RoomSettings, letter: str, on: bool, word: str | None) -> bool:
        """Change one of the room's modes; False when it was so already."""
        attribute = _SETTINGS[letter]
        if letter == "k":
            value: object = word if on else None
        elif letter == "l":
            value = int(word) if on and word is not None else None  # cmd.Mode checked the number
        else:
            value = on
        if getattr(settings, attribute) == value:
            return False
        setattr(settings, attribute, value)
        return True

    # ------------------------------------------------------------------------------------------ checks

    def _room(self, m: Member, name: str) -> Room:
        """A room `m` moderates from inside it (a server admin: any room someone is in)."""
        room_name = check_room(name)
        room = self.state.rooms.get(name_key(room_name))
        if room is None:
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"Nobody is in #{room_name}.", subject=room_name)
        if room.key not in m.rooms and not is_admin(m):
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"You are not in #{room_name}; /join it first.",
                            subject=room_name)
        self._require_op(m, room)
        return room

    @staticmethod
    def _require_op(m: Member, room: Room) -> None:
        if may_moderate(m, room):
            return
        if room.settings.owner_id is None and not room.ops:
            raise ChatError(ErrorCode.NOT_OP, f"#{room.name} has no owner: only its session ops (the first one in, "
                            "and those they make ops) and server admins can moderate it.", subject=room.name)
        raise ChatError(ErrorCode.NOT_OP, f"You are not an op of #{room.name}.", subject=room.name)

    @staticmethod
    def _protect(m: Member, room: Room, target: Member) -> None:
        """Ops never act on the owner or on a server admin; admins may."""
        if is_admin(m):
            return
        account = target.account
        if is_admin(target) or (account is not None and account.id == room.settings.owner_id):
            what = "a server admin" if is_admin(target) else f"the owner of #{room.name}"
            raise ChatError(ErrorCode.PROTECTED, f"{target.nick} is {what}.", subject=target.nick)

    def _remote_in(self, room: Room, nick: str) -> str | None:
        """The nick as spelled of a member another node holds in `room` (clustered), if `nick` is one and nobody
        here holds it."""
        key = name_key(nick)
        if key in self.state.nicks:
            return None
        return room.remote.get(key)

    @staticmethod
    def _protect_remote(m: Member, room: Room, nick: str) -> None:
        """As `_protect`, for a member of another node: its owner is known by nick (whether it is a server admin
        is known on its own node only)."""
        if not is_admin(m) and name_key(nick) == name_key(room.settings.owner_nick or ""):
            raise ChatError(ErrorCode.PROTECTED, f"{nick} is the owner of #{room.name}.", subject=nick)

    def _member_in(self, room: Room, nick: str) -> Member:
        target = self.state.nicks.get(name_key(nick))
        if target is None or room.key not in target.rooms:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"{nick} is not in #{room.name}.", subject=nick, room=room.name)
        return target

    def _online(self, nick: str) -> Member:
        target = self.state.nicks.get(name_key(nick))
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {nick} is online.", subject=nick)
        return target
