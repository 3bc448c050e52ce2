"""Accounts: registered nicknames, logins, private history and offline delivery. On the event-loop thread, like
every service; what costs time (hashing, reading the accounts) goes to the account workers and the reader, and
comes back here (`done`, `answered`).

The rules, in one place:
- A registered nickname is its account's: nobody else may hold it. A guest who chooses it is asked for its
  password (PasswordWanted: for `nc` users the next plain line is the password); a guest who holds it when its
  owner logs in (a registration made with `chat users add` while the guest was on) becomes a Guest nick.
- One connection per account: a second login to an account in use is refused (`already_logged_in`). One nick,
  one connection keeps every join, part, /who and private message meaning one person in one place; a session
  left behind by a dropped connection goes within the keepalive time (`--keepalive`), or at once with /quit.
- Logged in, your nickname is your account's (its case may change); /logout makes you a guest, GuestN.
- Failed logins are limited per account and per address (chat.server.throttle), registrations per address.
- Private messages between logged-in users form a conversation, paged by /history @NICK; a message to a
  registered user who is offline waits (at most `offline_max`) and is delivered at their next login, marked as
  history. Guests have no private history, and a conversation belongs to two account ids, which are never reused:
  re-registering a deleted account's nick gives a new account, with none of the old one's messages.

`login(member, nick, password, out)` is the way in for any front door (the IRC codec's SASL PLAIN too): its
outcome comes later as an `account` event (AccountChange) or an `error` whose command is "login".
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Literal, assert_never

from chat.passwords import PASSWORD_MAX, check_password
from chat.protocol import commands as cmd
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import (
    AccountChange,
    Away,
    ChatMessage,
    DeliveryState,
    Error,
    MessageKind,
    Notice,
    Operator,
    PasswordWanted,
    PrivateHistory,
    WhoIs,
)
from chat.protocol.names import is_guest_nick, name_key
from chat.server import moderation
from chat.server.account_worker import AccountJob, LoginJob, PasswordJob, RegisterJob
from chat.server.member import Member
from chat.server.outbox import Outbox
from chat.server.reads import AccountRead, NickLookup, PrivateHistoryRequest, WaitingMessages
from chat.server.throttle import FailureLimiter
from chat.storage.records import Delivered, PrivateRecord, StoredAccount

if TYPE_CHECKING:
    from chat.server.service import ChatService

UNAVAILABLE = "The server could not reach its accounts just now. Please try again."

log = logging.getLogger("chat.server")


class Accounts:
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat
        self.state = chat.state
        config = self.config = chat.config
        self.account_failures = FailureLimiter(config.login_burst, config.login_per_minute, config.throttle_keys)
        self.address_failures = FailureLimiter(config.login_burst, config.login_per_minute, config.throttle_keys)
        self.registrations = FailureLimiter(config.register_burst, config.register_per_minute, config.throttle_keys)

    # ---------------------------------------------------------------------------------- choosing a nick

    def claim(self, m: Member, nick: str, out: Outbox) -> None:
        """A member not logged in chose `nick`, which nobody online holds: is it registered? (answered in
        `answered`, then it takes the nick or is asked for the password)."""
        m.password_for = None
        node = self.config.node if self.config.cluster else None
        out.ask(NickLookup(m, name_key(nick), nick, "claim", node=node), m)

    def _claimed(self, lookup: NickLookup, out: Outbox) -> None:
        m = lookup.member
        if lookup.error is not None:
            self.chat.refused(m, ChatError(ErrorCode.ACCOUNT_UNAVAILABLE, UNAVAILABLE, command="nick"), out)
            return
        if lookup.taken:  # a member of another node holds it (chat.storage.cluster.claim_presence)
            self.chat.refused(m, ChatError(ErrorCode.NICK_TAKEN, f"The nickname {lookup.nick} is taken; choose "
                                           "another.", command="nick", subject=lookup.nick), out)
            return
        found = lookup.found
        if found is not None and found.account is not None:
            m.password_for = found.account.nick
            out.reply(m, PasswordWanted(found.account.nick))
            return
        try:
            self.chat.take_nick(m, lookup.nick, out)
        except ChatError as e:  # taken while the database was asked
            e.command = "nick"
            self.chat.refused(m, e, out)

    # ---------------------------------------------------------------------------------- logging in

    def login(self, m: Member, nick: str, password: str, out: Outbox, take_nick: bool = True,
              prompted: bool = False) -> None:
        """Start a login to the account `nick`. `take_nick` False (an IRC client's SASL before its NICK): the
        member stays unnamed until it chooses a nick, and then gets the account's. `prompted`: the password is the
        plain line that followed PasswordWanted (a wrong one asks again)."""
        key = name_key(nick)
        if m.account is not None:
            same = m.account.key == key
            raise ChatError(ErrorCode.LOGGED_IN, f"You are logged in as {m.account.nick}"
                            f"{' already' if same else '; /logout first'}.", subject=nick)
        holder = self.state.logged_in.get(key)
        if holder is not None:
            raise ChatError(ErrorCode.ALREADY_LOGGED_IN, f"{holder.nick} is logged in on another connection (one "
                            "connection per account); /quit there first.", subject=nick)
        self._take_attempt(m, key, nick)
        job = LoginJob(m, nick, key, _capped(password), take_nick, prompted,
                       node=self.config.node if self.config.cluster else None)
        out.work(job, m)

    def _login_checked(self, job: LoginJob, out: Outbox) -> None:
        m = job.member
        now = self.chat.clock()
        if job.busy or job.error is not None:  # not an attempt: it costs nothing
            self._give_back(job.key, m, now)
            raise _busy_or_unavailable(job)
        if job.account is None or not job.ok:
            self.chat.log_failed_login(m, job.nick, "no such account" if job.account is None else "bad password")
            if job.prompted and not m.registered and job.account is not None:
                m.password_for = job.account.nick  # `nc`: the next plain line is another try
            if job.account is None:
                raise ChatError(ErrorCode.NO_SUCH_ACCOUNT, f"Nobody registered the nickname {job.nick}.",
                                subject=job.nick)
            raise ChatError(ErrorCode.BAD_PASSWORD, f"Wrong password for {job.account.nick}.", subject=job.nick)
        self._give_back(job.key, m, now)
        account = job.account
        holder = self.state.logged_in.get(account.key)
        if holder is not None or m.account is not None or job.elsewhere:  # logged in meanwhile, elsewhere or here
            raise ChatError(ErrorCode.ALREADY_LOGGED_IN, f"{account.nick} is logged in on another connection.",
                            subject=account.nick)
        self._logged_in(m, account, "logged_in", job.take_nick, out)
        out.ask(WaitingMessages(m, account.id, self.config.offline_max), m)

    def _logged_in(self, m: Member, account: StoredAccount, change: Literal["registered", "logged_in"],
                   take_nick: bool, out: Outbox) -> None:
        m.account = account
        m.password_for = None
        self.state.logged_in[account.key] = m
        squatter = self.state.nicks.get(account.key)
        if squatter is not None and squatter is not m:
            self._make_guest(squatter, f"{account.nick} is a registered nickname and its owner logged in", out)
        nick = account.nick if m.key != account.key else m.nick  # logged in, your nick is your account's
        out.reply(m, AccountChange(change, account.nick, nick))
        if m.registered:
            self.chat.take_nick(m, nick, out)
        elif take_nick:
            self.chat.take_nick(m, account.nick, out)

    # ---------------------------------------------------------------------------------- server operators

    def oper(self, m: Member, name: str, password: str, out: Outbox) -> None:
        """/oper NAME PASSWORD (IRC's OPER): this connection takes the powers of the admin account NAME; its nick
        and its own login stay as they are. Checked like a login, on the workers and throttled alike (a wrong
        password is a failed login to NAME); answered in `_opered`."""
        key = name_key(name)
        self._take_attempt(m, key, name)
        out.work(LoginJob(m, name, key, _capped(password), take_nick=False, oper=True), m)

    def _take_attempt(self, m: Member, key: str, name: str) -> None:
        """One more password try at account `key` from `m`'s address, or LOGIN_THROTTLED if either is spent."""
        now = self.chat.clock()
        wait = max(self.account_failures.wait(key, now), self.address_failures.wait(m.address, now))
        if wait > 0:
            raise ChatError(ErrorCode.LOGIN_THROTTLED, f"Too many failed logins to {name} or from your address: "
                            f"try again in {math.ceil(wait)} s.", subject=name)
        self.account_failures.take(key, now)
        self.address_failures.take(m.address, now)

    def _opered(self, job: LoginJob, out: Outbox) -> None:
        m = job.member
        now = self.chat.clock()
        if job.busy or job.error is not None:
            self._give_back(job.key, m, now)
            raise _busy_or_unavailable(job)
        account = job.account
        if account is None or not account.admin:  # the same answer whatever the password: no oracle for it
            if job.ok:
                self._give_back(job.key, m, now)
            raise ChatError(ErrorCode.NO_SUCH_OPERATOR, f"{job.nick} is not an operator: only admin accounts are "
                            "(chat users admin).", subject=job.nick)
        if not job.ok:
            self.chat.log_failed_login(m, job.nick, "bad password (oper)")
            raise ChatError(ErrorCode.BAD_PASSWORD, f"Wrong password for {account.nick}.", subject=job.nick)
        self._give_back(job.key, m, now)
        m.oper_account = account
        log.info("%s is a server operator (%s)", m.nick, account.nick,
                 extra={"event": "oper", "nick": m.nick, "account": account.nick, "peer": m.address})
        out.reply(m, Operator(m.nick, account.nick))

    def _give_back(self, key: str, m: Member, now: float) -> None:
        self.account_failures.give_back(key, now)
        self.address_failures.give_back(m.address, now)

    def logout(self, m: Member, out: Outbox) -> None:
        account = self._account(m)
        self.forget(m)
        guest = self._guest_nick(m)
        for key in [k for k in m.cursors if k.startswith(cmd.PRIVATE_PREFIX)]:
            del m.cursors[key]
        out.reply(m, AccountChange("logged_out", account.nick, guest if m.registered else ""))
        if m.registered:
            self.chat.take_nick(m, guest, out)

    def forget(self, m: Member) -> None:
        """`m` is logged out, or gone: its account is free for another login."""
        account = m.account
        if account is not None and self.state.logged_in.get(account.key) is m:
            del self.state.logged_in[account.key]
        m.account = None

    def _make_guest(self, m: Member, why: str, out: Outbox) -> None:
        guest = self._guest_nick(m)
        out.reply(m, Notice(f"{why}: you are now {guest}."))
        if m.registered:
            self.chat.take_nick(m, guest, out)

    def _guest_nick(self, m: Member) -> str:
        nick, n = f"Guest{m.id}", 0
        while (holder := self.state.nicks.get(name_key(nick))) is not None and holder is not m:
            n += 1
            nick = f"Guest{m.id}{n}"
        return nick

    # ---------------------------------------------------------------------------------- the account itself

    def register(self, m: Member, password: str, out: Outbox) -> None:
        if m.account is not None:
            raise ChatError(ErrorCode.LOGGED_IN, f"You are logged in as {m.account.nick}: it is registered.")
        check_password(password)
        if is_guest_nick(m.nick):
            raise ChatError(ErrorCode.NICK_RESERVED, "Guest nicknames cannot be registered; choose another with "
                            "/nick NAME first.", subject=m.nick)
        now = self.chat.clock()
        if not self.config.is_exempt(m.address):
            wait = self.registrations.wait(m.address, now)
            if wait > 0:
                raise ChatError(ErrorCode.REGISTER_THROTTLED, "Too many accounts were registered from your address "
                                f"lately: try again in {math.ceil(wait)} s.")
            self.registrations.take(m.address, now)
        out.work(RegisterJob(m, m.nick, m.key, password), m)

    def _registered(self, job: RegisterJob, out: Outbox) -> None:
        m = job.member
        if job.busy or job.error is not None:
            self.registrations.give_back(m.address, self.chat.clock())
            raise _busy_or_unavailable(job)
        if job.account is None:
            if m.key == job.key and m.account is None:
                self._make_guest(m, f"{job.nick} was registered by someone else a moment ago", out)
            raise ChatError(ErrorCode.NICK_REGISTERED, f"{job.nick} is registered already.", subject=job.nick)
        self._logged_in(m, job.account, "registered", True, out)

    def change_password(self, m: Member, password: str, out: Outbox) -> None:
        account = self._account(m)
        check_password(password)
        out.work(PasswordJob(m, account.id, password), m)

    def _password_changed(self, job: PasswordJob, out: Outbox) -> None:
        m = job.member
        if job.busy or job.error is not None:
            raise _busy_or_unavailable(job)
        account = m.account
        if account is None or account.id != job.account_id:
            return
        if not job.ok:  # deleted meanwhile (`chat users delete`)
            self.logout(m, out)
            raise ChatError(ErrorCode.NO_SUCH_ACCOUNT, f"The account {account.nick} no longer exists.")
        out.reply(m, AccountChange("password_changed", account.nick, m.nick))

    # ---------------------------------------------------------------------------------- whois

    def whois(self, m: Member, nick: str, out: Outbox) -> None:
        target = self.state.nicks.get(name_key(nick))
        if target is None:  # clustered, the lookup also asks whether another node holds it
            node = self.config.node if self.config.cluster else None
            out.ask(NickLookup(m, name_key(nick), nick, "whois", node=node), m)
            return
        account = target.account
        rooms = sorted((r for r in target.rooms.values() if moderation.may_see(m, r)), key=lambda r: r.key)
        out.reply(m, WhoIs(target.nick, True, account is not None, account.registered_at if account else None, None,
                           max(0.0, self.chat.clock() - target.last_active), [r.name for r in rooms],
                           target.operator, target.person(), target.signed_on,
                           [r.name for r in rooms if moderation.is_room_op(target, r)],
                           [r.name for r in rooms if moderation.is_voiced(target, r)]))

    def _whois_read(self, lookup: NickLookup, out: Outbox) -> None:
        m = lookup.member
        if (target := self.state.nicks.get(lookup.key)) is not None:  # came online meanwhile
            self.whois(m, target.nick, out)
            return
        found = lookup.found
        if lookup.elsewhere is not None:
            self._whois_elsewhere(m, lookup, out)
            return
        if found is None:
            raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {lookup.nick} is online or registered.",
                            subject=lookup.nick)
        account = found.account
        if account is None:  # a guest's nick, seen once: not an identity
            out.reply(m, WhoIs(found.nick, False, False, None, None, None, []))
            return
        out.reply(m, WhoIs(account.nick, False, True, account.registered_at, found.last_seen, None, [],
                           account.admin))

    def _whois_elsewhere(self, m: Member, lookup: NickLookup, out: Outbox) -> None:
        """A nick held on another node: its rooms as `m` may see them (a hidden room, invite-only or secret, that is
        not in this node's memory only to an admin: who is invited to it is known where it is in memory), no idle
        time (that node knows it, not the database)."""
        held = lookup.elsewhere
        assert held is not None
        account = lookup.found.account if lookup.found is not None else None
        rooms = []
        for r in held.rooms:
            here = self.state.rooms.get(r.key)
            if here is not None and here.id == r.id:
                if moderation.may_see(m, here):
                    rooms.append(r)
            elif not r.hidden or moderation.is_admin(m):
                rooms.append(r)
        out.reply(m, WhoIs(held.nick, True, account is not None, account.registered_at if account else None, None,
                           None, [r.name for r in rooms], account.admin if account else False, None, held.since,
                           [r.name for r in rooms if r.op], [r.name for r in rooms if r.voiced]))

    # ---------------------------------------------------------------------------------- private messages

    def private(self, m: Member, target: Member, text: str, out: Outbox, notice: bool = False,
                client_tags: dict[str, str] | None = None) -> None:
        """A private message to someone online (`notice`: IRC's NOTICE; `client_tags`: IRCv3's, relayed live)."""
        message = ChatMessage(self.state.new_message_id(), _private_kind(notice), m.nick, text, self.chat.clock(),
                              to=target.nick, state=DeliveryState.PENDING, client_tags=client_tags)
        self._store(m, message, target.account.id if target.account else None, False, out)
        out.deliver((m,) if target is m else (m, target), message)
        if target.away is not None and target is not m:
            out.reply(m, Away(target.nick, target.away))

    def private_offline(self, m: Member, nick: str, text: str, out: Outbox, notice: bool = False) -> None:
        """A private message to someone not online: an account gets it on its next login."""
        node = self.config.node if self.config.cluster else None  # clustered: is it held on another node?
        out.ask(NickLookup(m, name_key(nick), nick, "msg", text, node=node, notice=notice), m)

    def _private_read(self, lookup: NickLookup, out: Outbox) -> None:
        m = lookup.member
        if (target := self.state.nicks.get(lookup.key)) is not None:  # came online meanwhile
            self.private(m, target, lookup.text, out, lookup.notice)
            return
        found = lookup.found
        if lookup.remote is not None:  # online on another node: stored here, delivered there after the commit
            node, nick = lookup.remote
            message = ChatMessage(self.state.new_message_id(), _private_kind(lookup.notice), m.nick, lookup.text,
                                  self.chat.clock(), to=nick, state=DeliveryState.PENDING)
            account = found.account.id if found is not None and found.account is not None else None
            self._store(m, message, account, False, out)
            out.writes.private_notify.append((node, message))
            out.reply(m, message)
            return
        if found is None or found.account is None:
            raise ChatError(ErrorCode.NO_SUCH_NICK, f"Nobody called {lookup.nick} is online.", subject=lookup.nick)
        if found.waiting >= self.config.offline_max:
            raise ChatError(ErrorCode.MAILBOX_FULL, f"{found.account.nick} is offline and has "
                            f"{found.waiting} private messages waiting already; try again once they have read them.",
                            subject=found.account.nick)
        message = ChatMessage(self.state.new_message_id(), _private_kind(lookup.notice), m.nick, lookup.text,
                              self.chat.clock(), to=found.account.nick, state=DeliveryState.PENDING)
        self._store(m, message, found.account.id, True, out)
        out.reply(m, message)
        out.reply(m, Notice(f"{found.account.nick} is offline: they will get it when they next log in."))

    def _store(self, m: Member, message: ChatMessage, to_account: int | None, offline: bool, out: Outbox) -> None:
        m.sent(message)
        m.last_active = message.time
        out.store_message(message, None, m)
        from_account = m.account.id if m.account else None
        if from_account is not None or to_account is not None:
            out.writes.private.append(PrivateRecord(message.id, from_account, to_account, offline))

    def history(self, m: Member, c: cmd.History, out: Outbox) -> None:
        """`/history @NICK`: a page of the conversation between m's account and NICK's."""
        account = m.account
        if account is None:
            raise ChatError(ErrorCode.NOT_LOGGED_IN, "Private history is kept for logged-in users only: /register "
                            "or /login first.")
        nick = c.nick or ""
        key = name_key(nick)
        target = self.state.nicks.get(key)
        other = target.account if target is not None and target.account and target.account.key == key else None
        request = PrivateHistoryRequest(m, account.id, key, other.nick if other else nick, c.count,
                                        other.id if other else None, before=c.before, after=c.after, around=c.around,
                                        before_ms=c.before_ms, after_ms=c.after_ms)
        if not c.placed:  # continue from the oldest message shown
            request.before = m.cursors.get(cmd.PRIVATE_PREFIX + key, self.state.next_message_id)
            request.continues = True
        out.ask(request, m)

    def _history_read(self, request: PrivateHistoryRequest, out: Outbox) -> None:
        m = request.member
        if m.account is None or m.account.id != request.account_id:
            return  # logged out meanwhile: these are not its messages any more
        if request.error is not None:
            raise ChatError(ErrorCode.HISTORY_UNAVAILABLE, UNAVAILABLE, subject=request.other_nick)
        if not request.found:
            raise ChatError(ErrorCode.NO_SUCH_ACCOUNT, f"{request.other_nick} is not a registered nickname: private "
                            "history is kept between accounts.", subject=request.other_nick)
        if request.continues and request.messages:
            m.cursors[cmd.PRIVATE_PREFIX + request.other_key] = request.messages[0].id
        if request.around is not None:
            out.reply(m, PrivateHistory(request.other_nick, request.messages, request.more, "around",
                                        request.around, request.newer))
            return
        out.reply(m, PrivateHistory(request.other_nick, request.messages, request.more, "page"))

    def _waiting_read(self, read: WaitingMessages, out: Outbox) -> None:
        m = read.member
        if m.account is None or m.account.id != read.account_id:
            return
        if read.error is not None:
            out.reply(m, Error(ErrorCode.ACCOUNT_UNAVAILABLE, "The private messages sent to you while you were away "
                               "could not be read just now; they wait for your next login.", "login"))
            return
        if not read.messages:
            return
        n = len(read.messages)
        out.reply(m, Notice(f"{n} private message{'s were' if n != 1 else ' was'} sent to you while you were away:"))
        out.reply(m, PrivateHistory(None, read.messages, read.total > n, "offline"))
        if read.total > n:
            out.reply(m, Notice(f"{read.total - n} more wait for your next login."))
        out.writes.delivered.append(Delivered(read.account_id, read.messages[-1].id))

    # ---------------------------------------------------------------------------------- answers

    def done(self, job: AccountJob, out: Outbox) -> None:
        """An account job is back from the workers (on the loop thread)."""
        m = job.member
        if m.gone:
            return
        try:
            match job:
                case LoginJob(oper=True):
                    self._opered(job, out)
                case LoginJob():
                    self._login_checked(job, out)
                case RegisterJob():
                    self._registered(job, out)
                case PasswordJob():
                    self._password_changed(job, out)
                case _:
                    assert_never(job)
        except ChatError as e:
            verb = "oper" if isinstance(job, LoginJob) and job.oper else None
            e.command = e.command or verb or {LoginJob: "login", RegisterJob: "register", PasswordJob: "password"}[
                type(job)]
            self.chat.refused(m, e, out)

    def answered(self, read: AccountRead, out: Outbox) -> None:
        """An accounts read is back from the reader (on the loop thread)."""
        m = read.member
        if m.gone:
            return
        try:
            match read:
                case NickLookup(purpose="claim"):
                    self._claimed(read, out)
                case NickLookup(purpose="whois"):
                    self._unless_failed(read)
                    self._whois_read(read, out)
                case NickLookup():
                    self._unless_failed(read)
                    self._private_read(read, out)
                case PrivateHistoryRequest():
                    self._history_read(read, out)
                case WaitingMessages():
                    self._waiting_read(read, out)
        except ChatError as e:
            e.command = e.command or _READ_VERBS.get(getattr(read, "purpose", ""), "history")
            self.chat.refused(m, e, out)

    @staticmethod
    def _unless_failed(read: NickLookup) -> None:
        if read.error is not None:
            raise ChatError(ErrorCode.ACCOUNT_UNAVAILABLE, UNAVAILABLE, subject=read.nick)

    def _account(self, m: Member) -> StoredAccount:
        if m.account is None:
            raise ChatError(ErrorCode.NOT_LOGGED_IN, "You are not logged in.")
        return m.account


_READ_VERBS = {"claim": "nick", "whois": "whois", "msg": "msg"}


def _private_kind(notice: bool) -> MessageKind:
    return MessageKind.PRIVATE_NOTICE if notice else MessageKind.PRIVATE


def _busy_or_unavailable(job: AccountJob) -> ChatError:
    if job.busy:
        return ChatError(ErrorCode.SERVER_BUSY, "The server is busy checking passwords: try again in a moment.")
    return ChatError(ErrorCode.ACCOUNT_UNAVAILABLE, UNAVAILABLE)


def _capped(password: str) -> str:
    """What the workers check: a password past PASSWORD_MAX is never hashed (it fails as a wrong one would)."""
    return password if len(password) <= PASSWORD_MAX else ""
