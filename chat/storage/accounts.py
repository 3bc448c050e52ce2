"""Accounts and private conversations in the database: what the server's account workers, its reader and the
`chat users` CLI read and write. Plain records out (chat.storage.records), never ORM rows, never a hash except to
the one caller that verifies it.

Every write here is one short transaction of its own (BEGIN IMMEDIATE on SQLite, like the server's writer), so
the CLI and a running server can change accounts side by side: the server reads an account afresh at each login.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from chat.protocol.events import ChatMessage
from chat.storage.records import StoredAccount
from chat.storage.repository import (
    MESSAGES,
    ROLES,
    ROOMS,
    UNDELIVERED,
    USERS,
    _message,
    conversation_of,
    to_datetime,
    to_timestamp,
)


@dataclass(slots=True)
class KnownNick:
    """What the database knows of a nickname: an account, or a guest's nick seen before."""

    nick: str
    account: StoredAccount | None  # None: not registered
    last_seen: float
    waiting: int = 0  # private messages waiting for the account (offline delivery)


@dataclass(slots=True)
class AccountListing:
    nick: str
    registered_at: float
    last_seen: float
    admin: bool


class AccountStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")

    # ------------------------------------------------------------------------------------------ reads

    def credentials(self, key: str) -> tuple[StoredAccount, str] | None:
        """The account registered under the nick key `key` and its password hash, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(USERS).where(and_(USERS.c.nick_key == key,
                                                        USERS.c.password_hash.is_not(None)))).first()
        if row is None:
            return None
        return _account(row), row.password_hash

    def known(self, key: str) -> KnownNick | None:
        """The nick key `key` as the database knows it (an account, or a guest's nick), or None if never seen."""
        with self.engine.connect() as conn:
            row = conn.execute(select(USERS).where(USERS.c.nick_key == key)).first()
            if row is None:
                return None
            account = _account(row) if row.password_hash is not None else None
            waiting = 0
            if account is not None:
                waiting = conn.execute(select(func.count()).select_from(UNDELIVERED)
                                       .where(UNDELIVERED.c.account_id == account.id)).scalar() or 0
        return KnownNick(row.nick, account, to_timestamp(row.last_seen), waiting)

    def accounts_of(self, keys: list[str]) -> dict[str, StoredAccount]:
        """The accounts registered under any of the nick keys `keys` (at most a few hundred), by key, in one query:
        what a burst of newcomers choosing nicks needs to know, without a query each."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(USERS).where(and_(USERS.c.nick_key.in_(keys),
                                                         USERS.c.password_hash.is_not(None)))).all()
        return {row.nick_key: _account(row) for row in rows}

    def waiting_messages(self, account_id: int, limit: int) -> tuple[list[ChatMessage], int]:
        """The oldest `limit` private messages waiting for the account, oldest first, and how many wait in all."""
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(UNDELIVERED)
                                 .where(UNDELIVERED.c.account_id == account_id)).scalar() or 0
            query = (select(MESSAGES).join(UNDELIVERED, UNDELIVERED.c.message_id == MESSAGES.c.id)
                     .where(UNDELIVERED.c.account_id == account_id).order_by(MESSAGES.c.id).limit(limit))
            messages = [_message(row, None) for row in conn.execute(query)]
        return messages, total

    def conversation(self, a: int, b: int, limit: int, before: int | None = None,
                     after: int | None = None) -> tuple[list[ChatMessage], bool]:
        """Private messages between accounts `a` and `b`, oldest first: the newest `limit` before id `before`, or
        the oldest `limit` after id `after`; and whether more exist beyond them. Only that conversation's rows
        are ever read (an indexed range of one `conversation` value): no id reaches anyone else's."""
        query = select(MESSAGES).where(conversation_of(a, b))
        if after is not None:
            query = query.where(MESSAGES.c.id > after).order_by(MESSAGES.c.id).limit(limit + 1)
        else:
            if before is not None:
                query = query.where(MESSAGES.c.id < before)
            query = query.order_by(MESSAGES.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        more = len(rows) > limit
        rows = rows[:limit]
        if after is None:
            rows.reverse()
        return [_message(row, None) for row in rows], more

    def accounts(self) -> list[AccountListing]:
        query = select(USERS).where(USERS.c.password_hash.is_not(None)).order_by(USERS.c.nick_key)
        with self.engine.connect() as conn:
            return [AccountListing(r.nick, to_timestamp(r.registered_at), to_timestamp(r.last_seen), bool(r.admin))
                    for r in conn.execute(query)]

    # ------------------------------------------------------------------------------------------ writes

    def register(self, nick: str, key: str, password_hash: str, now: float | None = None) -> StoredAccount | None:
        """Make `nick` an account with this password hash; None if it is registered already. A guest's row for
        the nick (seen before) becomes the account."""
        moment = to_datetime(now if now is not None else time.time())
        try:
            with self._writer.begin() as conn:
                row = conn.execute(select(USERS).where(USERS.c.nick_key == key)).first()
                if row is not None and row.password_hash is not None:
                    return None
                if row is None:
                    account_id = conn.execute(USERS.insert().values(
                        nick=nick, nick_key=key, first_seen=moment, last_seen=moment, password_hash=password_hash,
                        registered_at=moment, admin=False)).inserted_primary_key[0]  # type: ignore[index]
                else:
                    account_id = row.id
                    conn.execute(update(USERS).where(USERS.c.id == row.id).values(
                        nick=nick, last_seen=moment, password_hash=password_hash, registered_at=moment))
        except IntegrityError:  # registered at the same moment by someone else (PostgreSQL, or the CLI)
            return None
        return StoredAccount(account_id, nick, key, moment.timestamp(), moment.timestamp())

    def set_password(self, account_id: int, password_hash: str, replacing: str | None = None) -> bool:
        """Store a new hash; with `replacing`, only if the stored one is still that (a rehash on login must not
        undo a password changed meanwhile). False: no such account (or it changed)."""
        where = and_(USERS.c.id == account_id, USERS.c.password_hash.is_not(None))
        if replacing is not None:
            where = and_(where, USERS.c.password_hash == replacing)
        with self._writer.begin() as conn:
            return conn.execute(update(USERS).where(where).values(password_hash=password_hash)).rowcount > 0

    def set_admin(self, key: str, admin: bool) -> bool:
        with self._writer.begin() as conn:
            result = conn.execute(update(USERS).where(and_(USERS.c.nick_key == key,
                                                           USERS.c.password_hash.is_not(None))).values(admin=admin))
            return result.rowcount > 0

    def delete(self, key: str) -> bool:
        """Delete the account: its row, the messages waiting for it, its places in rooms; the rooms it owned
        become unowned. Its id is never given again, so its private conversations stay out of everyone's reach
        (nobody can log in as one of their sides)."""
        with self._writer.begin() as conn:
            account_id = conn.execute(select(USERS.c.id).where(and_(USERS.c.nick_key == key,
                                                                    USERS.c.password_hash.is_not(None)))).scalar()
            if account_id is None:
                return False
            conn.execute(delete(UNDELIVERED).where(UNDELIVERED.c.account_id == account_id))
            conn.execute(delete(ROLES).where(ROLES.c.account_id == account_id))
            conn.execute(update(ROOMS).where(ROOMS.c.owner_id == account_id).values(owner_id=None, owner_nick=None))
            conn.execute(delete(USERS).where(USERS.c.id == account_id))
        return True

    def exists(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(select(exists().where(and_(USERS.c.nick_key == key,
                                                                USERS.c.password_hash.is_not(None))))).scalar())


def _account(row: object) -> StoredAccount:
    r = row  # a Row of the users table
    registered = r.registered_at or r.first_seen  # type: ignore[attr-defined]
    return StoredAccount(
        id=r.id,  # type: ignore[attr-defined]
        nick=r.nick,  # type: ignore[attr-defined]
        key=r.nick_key,  # type: ignore[attr-defined]
        registered_at=to_timestamp(registered),
        last_seen=to_timestamp(r.last_seen),  # type: ignore[attr-defined]
        admin=bool(r.admin),  # type: ignore[attr-defined]
    )
