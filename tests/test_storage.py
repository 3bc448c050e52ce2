"""The store and the schema, on SQLite and PostgreSQL: migrations, batch writes, loading, history pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, func, inspect, select
from sqlalchemy.dialects import sqlite

from chat.protocol.events import ChatMessage, MessageKind
from chat.protocol.text import sanitize
from chat.storage.database import make_engine, resolve_url, upgrade
from chat.storage.repository import (
    MESSAGES,
    USERS,
    ChatStore,
    SeenUser,
    SqliteTimestamps,
    StoredRoom,
    TopicChange,
    WriteBatch,
    to_datetime,
)

ROOT = Path(__file__).resolve().parents[1]


def _store(db: str) -> ChatStore:
    engine = make_engine(db)
    upgrade(engine)
    return ChatStore(engine)


def _msg(i: int, room: str | None = "lobby", text: str | None = None, kind: MessageKind = MessageKind.MESSAGE,
         to: str | None = None) -> ChatMessage:
    return ChatMessage(i, kind, "alice", text or f"message {i}", 1_700_000_000.0 + i, room=room, to=to)


def test_migrations_create_the_schema_and_match_the_models(any_db: str) -> None:
    engine = make_engine(any_db)
    upgrade(engine)
    upgrade(engine)  # running it again is harmless
    assert {"users", "rooms", "messages", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    # `alembic check` from the project folder, as a developer runs it: models and migrations never drift
    result = subprocess.run([sys.executable, "-m", "alembic", "-x", f"db={any_db}", "check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_alembic_upgrade_head_from_the_project_folder(tmp_path: Path) -> None:
    db = tmp_path / "fresh.sqlite"
    result = subprocess.run([sys.executable, "-m", "alembic", "-x", f"db={db}", "upgrade", "head"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "messages" in inspect(make_engine(str(db))).get_table_names()


def test_sqlite_is_tuned(sqlite_db: str) -> None:
    engine = make_engine(sqlite_db, busy_timeout_ms=1234)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_plain_path_means_an_sqlite_file(tmp_path: Path) -> None:
    assert resolve_url(str(tmp_path / "x.sqlite")) == f"sqlite:///{tmp_path}/x.sqlite"
    assert resolve_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"


def test_write_then_load_and_page_history(any_db: str) -> None:
    store = _store(any_db)
    lobby = StoredRoom(1, "lobby", None, None, None, 1_700_000_000.0)
    dev = StoredRoom(2, "Dev", "topic", "alice", 1_700_000_001.0, 1_700_000_000.0)
    batch = WriteBatch(rooms=[lobby, dev], users=[SeenUser("alice", "alice", 1.0), SeenUser("Alice", "alice", 2.0)])
    batch.messages = [(_msg(i), 1) for i in range(1, 11)] + [(_msg(11, "Dev"), 2)]
    batch.messages.append((_msg(12, None, "psst", MessageKind.PRIVATE, to="bob"), None))
    store.write(batch)
    store.write(WriteBatch(rooms=[lobby], topics=[TopicChange(1, "Welcome", "bob", 1_700_000_100.0)]))

    loaded = store.load()
    assert (loaded.last_message_id, loaded.last_room_id) == (12, 2)
    lobby_found, dev_found = store.find_room("lobby", 4), store.find_room("dev", 4)
    assert lobby_found is not None and dev_found is not None and store.find_room("nowhere", 4) is None
    assert [(f.room.id, f.room.name, f.room.topic) for f in (lobby_found, dev_found)] == [
        (1, "lobby", "Welcome"), (2, "Dev", "topic")]
    assert [m.id for m in lobby_found.recent] == [7, 8, 9, 10]
    assert [m.id for m in dev_found.recent] == [11]
    first = lobby_found.recent[0]
    assert (first.kind, first.nick, first.text, first.room, first.time) == (
        MessageKind.MESSAGE, "alice", "message 7", "lobby", 1_700_000_007.0)
    assert (store.room_id("dev"), store.room_id("nowhere")) == (2, None)

    page, more = store.history(1, "lobby", 3, before=7)
    assert [m.id for m in page] == [4, 5, 6] and more
    page, more = store.history(1, "lobby", 5, before=4)
    assert [m.id for m in page] == [1, 2, 3] and not more
    page, more = store.history(1, "lobby", 3, after=8)
    assert [m.id for m in page] == [9, 10] and not more
    page, more = store.history(1, "lobby", 2, after=0)
    assert [m.id for m in page] == [1, 2] and more
    with store.engine.connect() as conn:
        users = conn.execute(select(USERS.c.nick, USERS.c.nick_key)).all()
        assert users == [("Alice", "alice")]  # one row per nick key; the latest spelling wins


def test_a_failed_batch_leaves_nothing_behind(any_db: str) -> None:
    store = _store(any_db)
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=[(_msg(1), 1)]))
    duplicate_id = WriteBatch(messages=[(_msg(2), 1), (_msg(1), 1)])
    with pytest.raises(Exception):  # noqa: B017 - any database error will do: the point is what is left
        store.write(duplicate_id)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MESSAGES)).scalar() == 1


ODD_TEXTS = ["it's \"quoted\"", "back\\slash", "nul\x00byte", "emoji 🎉👩‍💻", "'; DROP TABLE x; --",
             "percent % and _underscore_", "ünïcödé"]


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_text_round_trips_exactly(any_db: str, text: str) -> None:
    store = _store(any_db)
    if "\x00" in text and store.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL text cannot hold NUL; the server never stores one (it shows as ␀)")
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=[(_msg(1, text=text), 1)]))
    page, _ = store.history(1, "lobby", 10)
    assert page[0].text == sanitize(text)  # reads follow today's rule, whatever was stored (here: ␀ for NUL)
    with store.engine.connect() as conn:
        assert conn.execute(select(MESSAGES.c.text)).scalar() == text  # stored exactly


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # 1970 to 2100
def test_fast_sqlite_timestamps_are_what_sqlalchemy_would_store(t: float) -> None:
    dialect = sqlite.dialect()
    sqlalchemy_stores = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    assert SqliteTimestamps()(t) == sqlalchemy_stores(to_datetime(t))


def test_the_fast_insert_path_round_trips_time_exactly(sqlite_db: str) -> None:
    store = _store(sqlite_db)
    assert store._fast_insert is not None
    times = [1_700_000_000.123456, 1_700_000_000.9999996, 1_764_000_000.5, 1_600_000_000.0000004]
    rows = [(ChatMessage(i + 1, MessageKind.MESSAGE, "a", "t", t, room="lobby"), 1) for i, t in enumerate(times)]
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=rows))
    page, _ = store.history(1, "lobby", 10)
    assert [m.time for m in page] == [to_datetime(t).timestamp() for t in times]


def test_a_batch_of_room_messages_alone_is_stored_as_any_other_batch(sqlite_db: str) -> None:
    """SQLite's shortcut for messages-only batches (ChatStore._write_room_messages) writes the very rows, and
    index terms, that the SQLAlchemy path writes for the same messages in a batch with other writes."""
    store = _store(sqlite_db)
    texts = ["plain words", "ünïcödé wörds", "nul\x00byte", "a" * 300]
    general = [(_msg(i + 1, text=t), 1) for i, t in enumerate(texts)]
    alone = [(_msg(i + 11, text=t), 1) for i, t in enumerate(texts)]
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=general))
    assert store._raw is None  # that batch had a room in it: the general path
    store.write(WriteBatch(messages=alone))
    assert store._raw is not None  # the shortcut ran
    with store.engine.connect() as conn:
        rows = {r.id: r._asdict() for r in conn.execute(select(MESSAGES)).all()}
        for i in range(len(texts)):
            general_row, alone_row = rows[i + 1], rows[i + 11]
            assert alone_row["created_at"] == to_datetime(alone[i][0].time).replace(tzinfo=None)
            for row in (general_row, alone_row):  # the same but for the id and the time (each message's own)
                del row["id"], row["created_at"]
            assert alone_row == general_row
        found = conn.exec_driver_sql("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'words' ORDER BY rowid")
        assert [r[0] for r in found] == [1, 2, 11, 12]
    store.close()
    store.close()  # twice is harmless
    store.write(WriteBatch(messages=[(_msg(21), 1)]))  # and it checks a connection out again
    assert store.history(1, "lobby", 1)[0][0].id == 21


@pytest.mark.parametrize("sizes", [[1, 2, 3], [255, 256, 257], [700]])
def test_the_fast_path_stores_every_batch_size_whole_and_in_order(sqlite_db: str, sizes: list[int]) -> None:
    """The shortcut inserts many rows per statement, in chunks of powers of two (chat.storage.multirow): whatever
    the batch's size, every message goes in once, with its own values, and is found by its words."""
    store = _store(sqlite_db)
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=[(_msg(1), 1)]))
    next_id = 2
    for size in sizes:
        batch = [(_msg(i, text=f"word{i} shared"), 1) for i in range(next_id, next_id + size)]
        store.write(WriteBatch(messages=batch))
        next_id += size
    assert store._raw is not None  # the shortcut ran
    with store.engine.connect() as conn:
        rows = conn.execute(select(MESSAGES.c.id, MESSAGES.c.text, MESSAGES.c.room_id).order_by(MESSAGES.c.id)).all()
        assert [(r.id, r.room_id) for r in rows] == [(i, 1) for i in range(1, next_id)]
        assert [r.text for r in rows[1:]] == [f"word{i} shared" for i in range(2, next_id)]
        found = conn.exec_driver_sql("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'shared' ORDER BY rowid")
        assert [r[0] for r in found] == list(range(2, next_id))
        last = next_id - 1
        one = conn.exec_driver_sql(f"SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'word{last}'")
        assert [r[0] for r in one] == [last]
    store.close()


def test_a_failed_fast_path_commit_stores_none_of_its_chunks(sqlite_db: str) -> None:
    """A batch of several chunks is one transaction: a row that fails in a later chunk takes the earlier ones
    with it, and the store goes on afterwards."""
    store = _store(sqlite_db)
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=[(_msg(1), 1)]))
    batch = [(_msg(i), 1) for i in range(2, 302)] + [(_msg(1), 1)]  # the last one's id is taken: the insert fails
    with pytest.raises(Exception, match="UNIQUE"):
        store.write(WriteBatch(messages=batch))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MESSAGES)).scalar() == 1
    store.write(WriteBatch(messages=[(_msg(2), 1)]))
    assert [m.id for m in store.history(1, "lobby", 5)[0]] == [1, 2]
    store.close()


@pytest.mark.postgres
def test_a_released_server_lock_is_free_at_once_though_the_engine_lives_on(postgres_db: str) -> None:
    """A stopping server's other threads may still take connections from the pool: the lock's session must end
    at release, not wait in the pool for engine.dispose() (a restarted server then found the database in use)."""
    from sqlalchemy import text

    from chat.storage.lock import ADVISORY_LOCK_KEY, ServerLock

    engine = make_engine(postgres_db)
    try:
        lock = ServerLock(engine)
        lock.acquire()
        lock.release()
        with engine.connect() as conn:  # the pool's connection, as a thread still stopping would take it
            # pg_locks is the whole instance's: servers of tests running beside this one hold the same key in
            # databases of their own
            held = conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k"
                                     " AND database = (SELECT oid FROM pg_database"
                                     " WHERE datname = current_database())"),
                                {"k": ADVISORY_LOCK_KEY}).scalar()
        assert held == 0
        second = ServerLock(engine)
        second.acquire()  # and another server's lock is granted
        second.release()
    finally:
        engine.dispose()
