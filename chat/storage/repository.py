"""The message store: what the server writes and reads, as plain domain objects (never ORM rows).

The server's single writer calls `write()` with everything accepted since the last commit, in one transaction.
The hot path uses Core executemany inserts: one statement for a whole batch, no ORM unit of work per row. The
same transaction adds the messages to the search index (chat.storage.search_index).

On SQLite, a batch of room messages and nothing else (what a busy server commits nearly every time) skips
SQLAlchemy's execution machinery altogether: the statements SQLAlchemy compiled once, run on a driver connection
the writer keeps for itself, with many rows per statement (chat.storage.multirow). Measured (benchmarks/
path_micro.py, docs/PERFORMANCE.md): a one-message commit cost the writer thread a third of the CPU, and so held
the GIL a third as long, which is what the loop's latency feels; many rows a statement took another quarter off
a burst's insert.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Insert,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from chat.protocol.commands import MESSAGE_ID_MAX
from chat.protocol.events import ChatMessage, MessageKind, Target
from chat.protocol.render import datetime_millis
from chat.protocol.text import sanitize
from chat.storage.cluster import ClusterCommit, ClusterWriter
from chat.storage.models import Message, Room, RoomRole, Undelivered, User
from chat.storage.multirow import MultiRowInsert
from chat.storage.records import (
    FoundRoom,
    LoadedState,
    PrivateRecord,
    RoomSettings,
    SeenUser,
    StoredRole,
    StoredRoom,
    TopicChange,
    WriteBatch,
    conversation_key,
)
from chat.storage.search_index import (
    FTS_INSERT,
    PG_MESSAGES,
    VECTOR_COLUMN,
    BackfillStep,
    backfill_step,
    fts_document,
    index_messages,
    tsvector_literal,
)

__all__ = ["ChatStore", "FoundRoom", "LoadedState", "SeenUser", "StoredRoom", "TopicChange", "WriteBatch"]

_MESSAGE_COLUMNS = ("id", "kind", "room_id", "sender", "recipient", "text", "created_at", "sender_account_id",
                    "recipient_account_id", "conversation")
ROOMS: Table = Room.__table__  # type: ignore[assignment]
USERS: Table = User.__table__  # type: ignore[assignment]
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
ROLES: Table = RoomRole.__table__  # type: ignore[assignment]
UNDELIVERED: Table = Undelivered.__table__  # type: ignore[assignment]
# a kind's stored text by dict lookup: `MessageKind.value` is an enum property, a Python call per message
_KIND_TEXT = {kind: kind.value for kind in MessageKind}


def to_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class SqliteTimestamps:
    """`created_at` as SQLAlchemy's SQLite DATETIME stores `to_datetime(t)` ('YYYY-MM-DD HH:MM:SS.ffffff', UTC),
    without building a datetime per message: the profile showed that formatting as a tenth of the server's
    Python time under load. The seconds part is reused while it lasts. One instance per thread."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, t: float) -> str:
        frac, whole = math.modf(t)
        micro = round(frac * 1e6)  # the rounding datetime.fromtimestamp uses (half to even)
        second = int(whole)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%d %H:%M:%S.", time.gmtime(second))
        # concatenation and zfill, not an f-string's `:06d` (its format-spec parsing was a third of this call)
        return self._prefix + str(micro).zfill(6)


def to_timestamp(d: datetime) -> float:
    # SQLite hands back naive datetimes; everything stored is UTC
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


class ChatStore:
    def __init__(self, engine: Engine, *, search_index: bool = True, node: str | None = None) -> None:
        """`search_index=False` writes no search terms: only for measuring what the index costs, on a database
        without one (migrated to 0001)."""
        self.engine = engine
        self.search_index = search_index
        self.node = node  # a clustered node's name: rooms are read with their event number and remote members
        self._dialect = engine.dialect.name
        # the writer takes SQLite's write lock at BEGIN (see database._tune_sqlite)
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        # SQLite hot path: the messages insert compiled once by SQLAlchemy from the table, fed plain tuples
        # (executemany without per-row bind processing: 2x the messages per second of a Core insert)
        self._fast_insert: str | None = None
        if self._dialect == "sqlite":
            compiled = insert(MESSAGES).compile(dialect=engine.dialect)
            if tuple(compiled.positiontup or ()) == _MESSAGE_COLUMNS:
                self._fast_insert = str(compiled)
                # the hot path's statements with many rows each (chat.storage.multirow: one step, not one a row)
                self._messages_insert = MultiRowInsert(self._fast_insert, len(_MESSAGE_COLUMNS))
                self._fts_insert = MultiRowInsert(FTS_INSERT, 2)
            self._stamp = SqliteTimestamps()
        self._raw: Any = None  # the pool's proxy of the driver connection `_write_room_messages` uses

    def close(self) -> None:
        """Give back the connection the fast path keeps (the engine's other connections are the engine's)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    # ------------------------------------------------------------------------------------------ writes

    def write(self, batch: WriteBatch) -> None:
        """Commit the whole batch or nothing."""
        if self._fast_insert and batch.messages_only:
            self._write_room_messages(batch.messages)
            return
        with self._writer.begin() as conn:
            self._write_rows(conn, batch)

    def write_clustered(self, batch: WriteBatch, cluster: ClusterWriter) -> ClusterCommit:
        """A clustered node's commit (PostgreSQL): the same rows, with the room locks, ids, events and
        notifications of chat.storage.cluster in the same transaction. Never the SQLite shortcut."""
        with self._writer.begin() as conn:
            result = cluster.prepare(conn, batch)
            self._write_rows(conn, batch)
        cluster.committed()
        return result

    def _write_rows(self, conn: Connection, batch: WriteBatch) -> None:
        if batch.rooms:
            conn.execute(
                self._insert_ignoring_duplicates(ROOMS),
                [
                    {"id": r.id, "name": r.name, "name_key": r.name.lower(), "topic": r.topic,
                     "topic_set_by": r.topic_set_by,
                     "topic_set_at": to_datetime(r.topic_set_at) if r.topic_set_at else None,
                     "created_at": to_datetime(r.created_at), **_settings_row(r.settings)}
                    for r in batch.rooms
                ],
            )
        if batch.users:
            conn.execute(self._upsert_users(), _latest_per_user(batch.users))
        private: dict[int, PrivateRecord] = {p.message_id: p for p in batch.private}
        if batch.messages and self._fast_insert:
            conn.exec_driver_sql(self._fast_insert, self._sqlite_rows(batch.messages, private))
        elif batch.messages:
            rows = [dict(zip(_MESSAGE_COLUMNS, (m.id, m.kind.value, room_id, m.nick, m.to, m.text,
                                                to_datetime(m.time), *_accounts(private, m.id)), strict=True))
                    for m, room_id in batch.messages]
            if self._dialect == "postgresql" and self.search_index:
                # the vector rides in the message's own INSERT: no second row, no second statement
                for row, (m, _room_id) in zip(rows, batch.messages, strict=True):
                    row[VECTOR_COLUMN] = tsvector_literal(m.text)
                conn.execute(insert(PG_MESSAGES), rows)
            else:
                conn.execute(insert(MESSAGES), rows)
        if batch.messages and self.search_index and self._dialect != "postgresql":
            index_messages(conn, [(m.id, m.text) for m, _room_id in batch.messages])
        waiting = [{"account_id": p.recipient_account, "message_id": p.message_id}
                   for p in batch.private if p.offline and p.recipient_account is not None]
        if waiting:
            conn.execute(insert(UNDELIVERED), waiting)
        for t in batch.topics:
            conn.execute(
                update(ROOMS).where(ROOMS.c.id == t.room_id).values(
                    topic=t.topic, topic_set_by=t.nick, topic_set_at=to_datetime(t.time)
                )
            )
        for s in batch.settings:
            conn.execute(update(ROOMS).where(ROOMS.c.id == s.room_id).values(**_settings_row(s.settings)))
        if batch.roles:
            self._write_roles(conn, batch)
        for d in batch.delivered:
            conn.execute(delete(UNDELIVERED).where(and_(UNDELIVERED.c.account_id == d.account_id,
                                                        UNDELIVERED.c.message_id <= d.up_to)))

    def _write_room_messages(self, messages: list[tuple[ChatMessage, int | None]]) -> None:
        """SQLite, room messages only: the same rows and index terms as `write`, on the driver connection."""
        if self._raw is None:
            self._raw = self.engine.raw_connection()  # with the engine's pragmas (database._tune_sqlite)
        db: sqlite3.Connection = self._raw.driver_connection
        stamp, kinds = self._stamp, _KIND_TEXT
        values: list[object] = []
        add = values.extend
        for m, room_id in messages:  # one flat list, row after row, in the order of _MESSAGE_COLUMNS
            add((m.id, kinds[m.kind], room_id, m.nick, m.to, m.text, stamp(m.time), None, None, None))
        db.execute("BEGIN IMMEDIATE")  # the driver runs no transactions of its own (isolation_level None)
        try:
            self._messages_insert.run(db, values)
            if self.search_index:
                terms: list[object] = []
                add = terms.extend
                for m, _room_id in messages:
                    add((m.id, fts_document(m.text)))
                self._fts_insert.run(db, terms)
            db.execute("COMMIT")
        except BaseException:
            # back to the pool, which rolls it back (and discards it if the driver says it is gone); the next
            # write checks one out again, as the SQLAlchemy path does for every write
            self.close()
            raise

    def _sqlite_rows(self, messages: list[tuple[ChatMessage, int | None]],
                     private: dict[int, PrivateRecord]) -> list[tuple[object, ...]]:
        """The messages as rows of `_MESSAGE_COLUMNS` for the compiled insert: plain tuples, no bind processing."""
        stamp = self._stamp
        return [(m.id, m.kind.value, room_id, m.nick, m.to, m.text, stamp(m.time), *_accounts(private, m.id))
                if room_id is None else (m.id, m.kind.value, room_id, m.nick, m.to, m.text, stamp(m.time),
                                         None, None, None)
                for m, room_id in messages]

    def _write_roles(self, conn: Connection, batch: WriteBatch) -> None:
        for r in batch.roles:  # few, and their order matters (a ban, lifted, then set again)
            where = and_(ROLES.c.room_id == r.room_id, ROLES.c.role == r.role, ROLES.c.nick_key == r.nick_key)
            conn.execute(delete(ROLES).where(where))
            if r.granted:
                conn.execute(insert(ROLES).values(room_id=r.room_id, role=r.role, nick=r.nick, nick_key=r.nick_key,
                                                  account_id=r.account_id, set_by=r.set_by,
                                                  set_at=to_datetime(r.time)))

    def backfill_search(self, batch: int = 1000) -> BackfillStep:
        """Index the newest `batch` messages stored before the search index existed (one short transaction).
        For the writer's idle moments; `step.below is None` once there is nothing left to do."""
        return backfill_step(self.engine, batch)

    def _insert_ignoring_duplicates(self, table: Table) -> Insert:
        # a room may already be there: a batch that failed after the room went in is retried with it. Only its
        # own id is a duplicate to ignore: another row under its name means two rooms for one name, and its
        # messages would name a row never written (the loop makes sure there is one room per name)
        if self._dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=[table.c.id])
        if self._dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing(index_elements=[table.c.id])
        raise NotImplementedError(f"no upsert for {self._dialect}")

    def _upsert_users(self) -> Insert:
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = dialect_insert(USERS)
        return stmt.on_conflict_do_update(
            index_elements=["nick_key"], set_={"nick": stmt.excluded.nick, "last_seen": stmt.excluded.last_seen}
        )

    # ------------------------------------------------------------------------------------------ reads

    def load(self) -> LoadedState:
        """Where the id counters continue, for a server starting up: two indexed queries, however many rooms and
        messages the database holds (rooms are read when someone joins them: `find_room`)."""
        with self.engine.connect() as conn:
            last_message = conn.execute(select(func.max(MESSAGES.c.id))).scalar() or 0
            last_room = conn.execute(select(func.max(ROOMS.c.id))).scalar() or 0
        return LoadedState(last_message_id=last_message, last_room_id=last_room)

    def find_room(self, key: str, recent: int) -> FoundRoom | None:
        """The room whose name key is `key`, with its settings, who is what in it, and its newest `recent`
        messages (oldest first), or None."""
        # clustered: one snapshot, so the event number read matches the messages read (no gap, no duplicate)
        engine = self.engine.execution_options(isolation_level="REPEATABLE READ") if self.node else self.engine
        with engine.connect() as conn:
            row = conn.execute(select(ROOMS).where(ROOMS.c.name_key == key)).first()
            if row is None:
                return None
            room = _stored_room(row)
            messages: list[ChatMessage] = []
            if recent > 0:  # an indexed read of `recent` rows, however long the room's history is
                query = (select(MESSAGES).where(MESSAGES.c.room_id == room.id)
                         .order_by(MESSAGES.c.id.desc()).limit(recent))
                messages = [_message(r, room.name) for r in reversed(list(conn.execute(query)))]
            roles = [
                StoredRole(r.role, r.nick, r.nick_key, r.account_id, r.set_by, to_timestamp(r.set_at))
                for r in conn.execute(select(ROLES).where(ROLES.c.room_id == room.id).order_by(ROLES.c.id))
            ]
            found = FoundRoom(room, messages, roles)
            if self.node is not None:
                found.seq = row.seq
                found.remote = {r.nick_key: r.nick for r in conn.execute(
                    text("SELECT nick_key, nick FROM room_members WHERE room_id = :r AND node <> :n"),
                    {"r": room.id, "n": self.node})}
        return found

    def room_id(self, key: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(ROOMS.c.id).where(ROOMS.c.name_key == key)).scalar()

    def history(
        self, room_id: int, room_name: str, limit: int, before: int | None = None, after: int | None = None
    ) -> tuple[list[ChatMessage], bool]:
        """Messages of a room, oldest first: the newest `limit` before id `before`, or the oldest `limit`
        after id `after`. The flag tells whether more exist beyond them in the direction asked."""
        query = select(MESSAGES).where(MESSAGES.c.room_id == room_id)
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
        return [_message(row, room_name) for row in rows], more


def conversation_of(a: int, b: int) -> ColumnElement[bool]:
    """The rows of the private conversation between accounts `a` and `b` (an indexed range of `conversation`)."""
    return MESSAGES.c.conversation == conversation_key(a, b)


def first_id_from(engine: Engine, where: ColumnElement[bool], ms: int) -> int:
    """The first id of the messages `where` selects (a room's, a conversation's) whose time is at millisecond `ms`
    or later (one past the newest when none is): those before it are the ones before `ms`. Ids are given in the
    order messages are accepted, which is their time order, so a binary search over the ids finds it, each probe
    one seek of the (room_id, id) or (conversation, id) index: at most about 64 probes, however long the history,
    and no index on time. (A server clock stepped back would blur the seconds it repeated.)"""
    lo, hi = 0, MESSAGE_ID_MAX + 1
    with engine.connect() as conn:
        while lo < hi:
            mid = (lo + hi) // 2
            row = conn.execute(select(MESSAGES.c.id, MESSAGES.c.created_at).where(where, MESSAGES.c.id >= mid)
                               .order_by(MESSAGES.c.id).limit(1)).first()
            if row is None or datetime_millis(row.created_at) >= ms:
                hi = mid  # every message from `mid` on is at `ms` or later
            else:
                lo = row.id + 1  # that one (and all before it) is earlier
    return lo


PRIVATE_SCAN_MAX = 100_000  # the newest messages /targets looks through for someone's private conversations


def latest_targets(engine: Engine, rooms: dict[int, str], account_id: int | None, after_ms: int, before_ms: int,
                   limit: int) -> list[Target]:
    """/targets: of the rooms given (id -> name) and of the account's private conversations, those whose latest
    message is strictly between `after_ms` and `before_ms`, oldest first, at most `limit`. A room's latest message
    is one seek of its index; the conversations are found among the server's newest PRIVATE_SCAN_MAX messages (a
    range of the primary key: no index on who sent what), then each one's latest by its own index."""
    found: list[tuple[int, Target]] = []
    with engine.connect() as conn:
        for room_id, name in rooms.items():
            at = conn.execute(select(MESSAGES.c.created_at).where(MESSAGES.c.room_id == room_id)
                              .order_by(MESSAGES.c.id.desc()).limit(1)).scalar()
            if at is not None:
                found.append((datetime_millis(at), Target(name, None, to_timestamp(at))))
        newest = conn.execute(select(func.max(MESSAGES.c.id))).scalar() if account_id is not None else None
        if newest is not None:
            mine = or_(MESSAGES.c.sender_account_id == account_id, MESSAGES.c.recipient_account_id == account_id)
            conversations = conn.execute(select(MESSAGES.c.conversation).distinct().where(
                MESSAGES.c.id > newest - PRIVATE_SCAN_MAX, MESSAGES.c.conversation.is_not(None), mine)).scalars()
            for conversation in list(conversations):
                row = conn.execute(select(MESSAGES.c.created_at, MESSAGES.c.sender, MESSAGES.c.recipient,
                                          MESSAGES.c.sender_account_id)
                                   .where(MESSAGES.c.conversation == conversation)
                                   .order_by(MESSAGES.c.id.desc()).limit(1)).first()
                if row is not None:
                    other = row.recipient if row.sender_account_id == account_id else row.sender
                    found.append((datetime_millis(row.created_at), Target(None, other, to_timestamp(row.created_at))))
    inside = sorted((x for x in found if after_ms < x[0] < before_ms), key=lambda x: x[0])
    return [target for _, target in inside[:limit]]


def _latest_per_user(users: Sequence[SeenUser]) -> list[dict[str, object]]:
    latest: dict[str, SeenUser] = {}
    for u in users:  # one row per key: an upsert may not touch the same row twice in one statement
        latest[u.key] = u
    return [
        {"nick": u.nick, "nick_key": u.key, "first_seen": to_datetime(u.time), "last_seen": to_datetime(u.time)}
        for u in latest.values()
    ]


def _accounts(private: dict[int, PrivateRecord], message_id: int) -> tuple[int | None, int | None, str | None]:
    p = private.get(message_id)
    if p is None:  # a private message between guests, or a room message
        return None, None, None
    return p.sender_account, p.recipient_account, p.conversation


def _settings_row(s: RoomSettings) -> dict[str, object]:
    return {"owner_id": s.owner_id, "owner_nick": s.owner_nick, "invite_only": s.invite_only,
            "moderated": s.moderated, "topic_ops_only": s.topic_ops_only, "join_key": s.key,
            "member_limit": s.limit, "secret": s.secret, "no_external": s.no_external}


def _stored_room(row: object) -> StoredRoom:
    r = row  # a Row of the rooms table
    return StoredRoom(
        id=r.id,  # type: ignore[attr-defined]
        name=r.name,  # type: ignore[attr-defined]
        topic=sanitize(r.topic) if r.topic else r.topic,  # type: ignore[attr-defined]  # see _message
        topic_set_by=r.topic_set_by,  # type: ignore[attr-defined]
        topic_set_at=to_timestamp(r.topic_set_at) if r.topic_set_at else None,  # type: ignore[attr-defined]
        created_at=to_timestamp(r.created_at),  # type: ignore[attr-defined]
        settings=RoomSettings(
            owner_id=r.owner_id,  # type: ignore[attr-defined]
            owner_nick=r.owner_nick,  # type: ignore[attr-defined]
            invite_only=bool(r.invite_only),  # type: ignore[attr-defined]
            moderated=bool(r.moderated),  # type: ignore[attr-defined]
            topic_ops_only=bool(r.topic_ops_only),  # type: ignore[attr-defined]
            key=r.join_key,  # type: ignore[attr-defined]
            limit=r.member_limit,  # type: ignore[attr-defined]
            secret=bool(r.secret),  # type: ignore[attr-defined]
            no_external=bool(r.no_external),  # type: ignore[attr-defined]
        ),
    )


def _message(row: object, room_name: str | None) -> ChatMessage:
    r = row  # a Row of the messages table
    return ChatMessage(
        id=r.id,  # type: ignore[attr-defined]
        kind=MessageKind(r.kind),  # type: ignore[attr-defined]
        nick=r.sender,  # type: ignore[attr-defined]
        # under today's rule, whoever wrote it (an older chat, another program): text from a database is shown
        text=sanitize(r.text),  # type: ignore[attr-defined]
        time=to_timestamp(r.created_at),  # type: ignore[attr-defined]
        room=room_name,
        to=r.recipient,  # type: ignore[attr-defined]
    )
