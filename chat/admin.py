"""Admin work behind `chat history`, `chat rooms`, `chat index` and `chat users`: safe while a server runs on the
database.

History and rooms are read-only; `chat index` writes the search index in short transactions. Accounts are changed
in short transactions of their own, which a running server sees at once: it reads an account afresh at every login
(a new password, an admin flag, a deleted account take effect at the next login; a session logged in already
carries on until it logs out or leaves).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from chat.passwords import DEFAULT_PROFILE, Hasher, check_password
from chat.protocol.errors import ChatError
from chat.protocol.events import ChatMessage, MessageKind
from chat.protocol.names import check_nick, check_room, is_guest_nick, name_key, strip_room_prefix
from chat.protocol.render import iso_time, json_line, message_json, short_time
from chat.protocol.text import sanitize
from chat.search.query import parse_search
from chat.storage.accounts import AccountListing, AccountStore
from chat.storage.database import DatabaseUnusable, check_schema, database_errors, make_engine, sqlite_path
from chat.storage.repository import MESSAGES, ROOMS, _message, to_timestamp
from chat.storage.search import PAGE_MAX, SearchPage, SearchScope, search_messages
from chat.storage.search_index import STATE, backfill

ADMIN_SEARCH_BUDGET = 30.0  # seconds per page of results: an admin may ask for much more than a user


class AdminError(Exception):
    """A problem with the request (unknown room, missing or unusable database): shown as one line, exit status 1."""


@contextmanager
def admin_errors(db: str) -> Iterator[None]:
    """Inside this block, a database that cannot be used is an AdminError: one line, not a traceback."""
    try:
        with database_errors(db):
            yield
    except DatabaseUnusable as e:
        raise AdminError(str(e)) from e


def open_database(db: str) -> Engine:
    """An engine on an existing chat database. A database a newer chat migrated is refused, as `chat serve`
    refuses it: its migrations may have changed what these queries read, and a wrong answer is worse than none."""
    with admin_errors(db):
        engine = make_engine(db)
        path = sqlite_path(str(engine.url))
        if path is not None and not path.exists():
            raise AdminError(f"no database at {path} (chat serve --db {path} creates one)")
        if not inspect(engine).has_table("messages"):
            raise AdminError(f"{engine.url.render_as_string(hide_password=True)} has no chat tables; "
                             "run chat serve on it once")
        with engine.connect() as connection:
            check_schema(connection)
    return engine


def parse_when(value: str, *, end: bool = False) -> datetime:
    """An ISO date (2026-11-24), date and time (2026-11-24T07:30, 2026-11-24 07:30:15) or time today (07:30).
    Times without a zone are UTC. A bare date as an `until` bound means the end of that day."""
    text = value.strip()
    try:
        if len(text) <= 8 and ":" in text:
            moment = datetime.combine(datetime.now(UTC).date(), time.fromisoformat(text))
        elif len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AdminError(f"{value!r} is not an ISO date or time (like 2026-11-24, 2026-11-24T07:30 or 07:30)") \
            from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)  # in UTC as stored; the queries compare with it
    except OverflowError:  # 0001-01-01T00:00+05:00 is in the year 0
        raise AdminError(f"{value!r} is out of range: in UTC it falls outside the years 1-9999") from None


def open_accounts(db: str) -> Engine:
    """The database for `chat users`: it must have been upgraded to accounts (chat serve does it at start)."""
    engine = open_database(db)
    if "password_hash" not in {c["name"] for c in inspect(engine).get_columns("users")}:
        raise AdminError("this database has no accounts yet: run chat serve on it once (it upgrades it)")
    return engine


def room_history(
    engine: Engine,
    room: str,
    *,
    limit: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    user: str | None = None,
    grep: str | None = None,
) -> list[ChatMessage]:
    """A room's messages in time order (the newest `limit` if given, still oldest first)."""
    key = name_key(strip_room_prefix(room))
    with engine.connect() as conn:
        found = conn.execute(select(ROOMS.c.id, ROOMS.c.name).where(ROOMS.c.name_key == key)).first()
        if found is None:
            raise AdminError(f"there is no room #{strip_room_prefix(room)}")
        query = select(MESSAGES).where(MESSAGES.c.room_id == found.id)
        if since is not None:
            query = query.where(MESSAGES.c.created_at >= _db_time(engine, since))
        if until is not None:
            query = query.where(MESSAGES.c.created_at <= _db_time(engine, until))
        if user:
            query = query.where(func.lower(MESSAGES.c.sender) == name_key(user))
        if grep:
            escaped = grep.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(MESSAGES.c.text.ilike(f"%{escaped}%", escape="\\"))
        if limit is not None:
            query = query.order_by(MESSAGES.c.id.desc()).limit(limit)
            rows = list(conn.execute(query))
            rows.reverse()
        else:
            rows = list(conn.execute(query.order_by(MESSAGES.c.id)))
    return [_message(row, found.name) for row in rows]


@dataclass(slots=True)
class SearchRun:
    messages: Iterator[ChatMessage]  # every match, newest first, fetched a page at a time
    unindexed_below: int | None  # messages with ids below this are not indexed yet (chat index)


def search_history(engine: Engine, query: str, *, room: str | None = None, limit: int | None = None,
                   budget: float = ADMIN_SEARCH_BUDGET) -> SearchRun:
    """The search language of /search over every room and private message, unless `in:` (or `room`) narrows it."""
    try:
        parsed = parse_search(query)
        if room is not None:
            parsed = replace(parsed, rooms=(*parsed.rooms, check_room(room)))
    except ChatError as e:
        raise AdminError(e.message) from None
    with engine.connect() as conn:
        known = set(conn.execute(select(ROOMS.c.name_key)).scalars())
    for name in parsed.rooms:
        if name_key(name) not in known:
            raise AdminError(f"there is no room #{name}")
    scope = SearchScope.everything()

    def page(before: int | None, size: int) -> SearchPage:
        try:
            return search_messages(engine, parsed, scope, limit=size, before=before, budget=budget)
        except ChatError as e:
            raise AdminError(e.message) from None

    first = page(None, min(limit or PAGE_MAX, PAGE_MAX))

    def pages() -> Iterator[ChatMessage]:
        current, left = first, limit
        while True:
            shown = current.messages if left is None else current.messages[:left]
            yield from shown
            if left is not None:
                left -= len(shown)
            if not current.more or left == 0 or not shown:
                return
            current = page(shown[-1].id, min(left or PAGE_MAX, PAGE_MAX))

    return SearchRun(pages(), first.unindexed_below)


def index_database(engine: Engine, *, batch: int = 1000, pause: float = 0.01) -> int:
    """Index the messages stored before the search index existed; returns how many. Progress goes to the log."""
    if not inspect(engine).has_table(STATE.name):
        raise AdminError("this database has no search index yet: start chat serve on it once (it upgrades the "
                         "schema), then run chat index")
    return backfill(engine, batch=batch, pause=pause)


def _db_time(engine: Engine, moment: datetime) -> datetime:
    # SQLite stores naive UTC text, compared as strings: compare with naive UTC
    utc = moment.astimezone(UTC)
    return utc.replace(tzinfo=None) if engine.dialect.name == "sqlite" else utc


@dataclass(slots=True)
class RoomStats:
    name: str
    topic: str | None
    messages: int
    last_activity: float | None


def room_stats(engine: Engine) -> list[RoomStats]:
    counts = (
        select(MESSAGES.c.room_id, func.count().label("n"), func.max(MESSAGES.c.created_at).label("last"))
        .where(MESSAGES.c.room_id.is_not(None))
        .group_by(MESSAGES.c.room_id)
        .subquery()
    )
    query = (
        select(ROOMS.c.name, ROOMS.c.topic, counts.c.n, counts.c.last)
        .outerjoin(counts, counts.c.room_id == ROOMS.c.id)
        .order_by(ROOMS.c.name_key)
    )
    with engine.connect() as conn:
        return [
            RoomStats(row.name, sanitize(row.topic) if row.topic else None, row.n or 0,
                      to_timestamp(row.last) if row.last else None)
            for row in conn.execute(query)
        ]


# ------------------------------------------------------------------------------------------------ output


def format_messages(messages: Iterable[ChatMessage], fmt: str) -> Iterator[str]:
    if fmt == "json":
        for m in messages:
            yield json_line(message_json(m))
    elif fmt == "csv":
        yield from _csv_lines(["id", "time", "room", "kind", "nick", "text"],
                              ([m.id, iso_time(m.time), m.room, m.kind.value, m.nick, m.text] for m in messages))
    else:
        for m in messages:
            body = f"* {m.nick} {m.text}" if m.kind is MessageKind.ACTION else f"{m.nick}: {m.text}"
            yield f"{short_time(m.time)}  {body}"


def format_found(messages: Iterable[ChatMessage], fmt: str) -> Iterator[str]:
    """Search results, from any room or private conversation: each line says where it was said."""
    if fmt == "json":
        for m in messages:
            yield json_line(message_json(m))
    elif fmt == "csv":
        yield from _csv_lines(["id", "time", "room", "kind", "nick", "to", "text"],
                              ([m.id, iso_time(m.time), m.room or "", m.kind.value, m.nick, m.to or "", m.text]
                               for m in messages))
    else:
        for m in messages:
            if m.kind is MessageKind.PRIVATE:
                yield f"{short_time(m.time)}  (private)  {m.nick} -> {m.to}: {m.text}"
            else:
                body = f"* {m.nick} {m.text}" if m.kind is MessageKind.ACTION else f"{m.nick}: {m.text}"
                yield f"{short_time(m.time)}  #{m.room}  {body}"


def format_rooms(rooms: list[RoomStats], fmt: str) -> Iterator[str]:
    def last(r: RoomStats) -> str | None:
        return iso_time(r.last_activity) if r.last_activity else None

    if fmt == "json":
        for r in rooms:
            yield json_line({"room": r.name, "topic": r.topic, "messages": r.messages, "last_activity": last(r)})
    elif fmt == "csv":
        yield from _csv_lines(["room", "topic", "messages", "last_activity"],
                              ([r.name, r.topic or "", r.messages, last(r) or ""] for r in rooms))
    else:
        if not rooms:
            yield "no rooms yet"
            return
        width = max(len(r.name) for r in rooms) + 1
        yield f"{'ROOM':<{width}}  {'MESSAGES':>8}  {'LAST ACTIVITY (UTC)':<19}  TOPIC"
        for r in rooms:
            when = short_time(r.last_activity) if r.last_activity else "-"
            yield f"{'#' + r.name:<{width}}  {r.messages:>8}  {when:<19}  {r.topic or ''}"


def _csv_lines(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="")
    for row in (header, *rows):
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


# ------------------------------------------------------------------------------------------------ accounts


def _checked_nick(nick: str) -> str:
    try:
        check_nick(nick)
    except ChatError as e:
        raise AdminError(e.message) from None
    if is_guest_nick(nick):
        raise AdminError(f"{nick}: Guest nicknames cannot be registered (the server gives them to guests)")
    return nick


def add_account(engine: Engine, nick: str, password: str, profile: str = DEFAULT_PROFILE) -> None:
    """Register `nick` with `password`, as /register does (a guest online under that nick keeps it until its
    next change of nick or login of the owner, who then takes it)."""
    accounts = AccountStore(engine)
    _checked_nick(nick)
    _checked_password(password)
    if accounts.register(nick, name_key(nick), Hasher(profile).hash(password)) is None:
        raise AdminError(f"{nick} is registered already")


def change_password(engine: Engine, nick: str, password: str, profile: str = DEFAULT_PROFILE) -> None:
    accounts = AccountStore(engine)
    found = accounts.credentials(name_key(nick))
    if found is None:
        raise AdminError(f"there is no account {nick}")
    _checked_password(password)
    accounts.set_password(found[0].id, Hasher(profile).hash(password))


def delete_account(engine: Engine, nick: str) -> None:
    if not AccountStore(engine).delete(name_key(nick)):
        raise AdminError(f"there is no account {nick}")


def set_admin(engine: Engine, nick: str, admin: bool) -> None:
    if not AccountStore(engine).set_admin(name_key(nick), admin):
        raise AdminError(f"there is no account {nick}")


def list_accounts(engine: Engine) -> list[AccountListing]:
    return AccountStore(engine).accounts()


def _checked_password(password: str) -> None:
    try:
        check_password(password)
    except ChatError as e:
        raise AdminError(e.message) from None


def format_accounts(accounts: list[AccountListing], fmt: str) -> Iterator[str]:
    if fmt == "json":
        for a in accounts:
            yield json_line({"nick": a.nick, "registered_at": iso_time(a.registered_at),
                              "last_seen": iso_time(a.last_seen), "admin": a.admin})
    elif fmt == "csv":
        yield from _csv_lines(["nick", "registered_at", "last_seen", "admin"],
                              ([a.nick, iso_time(a.registered_at), iso_time(a.last_seen), a.admin] for a in accounts))
    else:
        if not accounts:
            yield "no accounts yet (chat users add NICK, or /register in the chat)"
            return
        width = max(len(a.nick) for a in accounts)
        yield f"{'NICK':<{width}}  {'REGISTERED (UTC)':<19}  {'LAST SEEN (UTC)':<19}  ADMIN"
        for a in accounts:
            yield (f"{a.nick:<{width}}  {short_time(a.registered_at):<19}  {short_time(a.last_seen):<19}  "
                   f"{'yes' if a.admin else ''}")
