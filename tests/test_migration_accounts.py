"""Migration 0002 (accounts) on a database made before it: every message, room and nick is still there, and a
server on it serves the old history, lets an old nick be registered, and keeps old private messages private."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, inspect, text

from chat.storage.database import alembic_config, make_engine
from harness import LineClient, ServerThread

PASSWORD = "correct horse battery"
T0 = datetime(2026, 11, 24, 7, 40, tzinfo=UTC)


def _turn_one_database(db: str) -> int:
    """A database as today's main (revision 0001) leaves it, with rooms, nicks, room and private messages.
    Returns how many messages it holds."""
    engine = make_engine(db)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    with engine.begin() as conn:
        # as main's writer does: ids from the database, rooms' and messages' from the server
        conn.execute(text("INSERT INTO users (nick, nick_key, first_seen, last_seen) VALUES "
                          "('Alice', 'alice', :t, :t), ('bob', 'bob', :t, :t)"), {"t": T0})
        conn.execute(text("INSERT INTO rooms (id, name, name_key, topic, topic_set_by, topic_set_at, created_at) "
                          "VALUES (1, 'lobby', 'lobby', NULL, NULL, NULL, :t), "
                          "(2, 'dev', 'dev', 'Dev talk', 'bob', :t, :t)"), {"t": T0})
        rows = [{"id": i, "kind": "message", "room_id": 1 + i % 2, "sender": "Alice" if i % 3 else "bob",
                 "recipient": None, "text": f"old message {i}", "t": T0} for i in range(1, 301)]
        rows.append({"id": 301, "kind": "private", "room_id": None, "sender": "Alice", "recipient": "bob",
                     "text": "an old secret", "t": T0})
        conn.execute(text("INSERT INTO messages (id, kind, room_id, sender, recipient, text, created_at) VALUES "
                          "(:id, :kind, :room_id, :sender, :recipient, :text, :t)"), rows)
    engine.dispose()
    return len(rows)


def _count(db: str, table: str) -> int:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
    finally:
        engine.dispose()


def test_a_turn_one_database_upgrades_without_losing_anything(
        make_server: Callable[..., ServerThread], any_db: str) -> None:
    total = _turn_one_database(any_db)
    server = make_server(db=any_db)  # chat serve upgrades the database at start
    engine = create_engine(any_db if "://" in any_db else f"sqlite:///{any_db}")
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("users")}
        assert {"password_hash", "registered_at", "admin"} <= columns
        with engine.connect() as conn:
            texts = [r[0] for r in conn.execute(text("SELECT text FROM messages ORDER BY id"))]
            users = conn.execute(text("SELECT id, nick, password_hash FROM users ORDER BY id")).all()
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert texts == [f"old message {i}" for i in range(1, 301)] + ["an old secret"]
    assert len(texts) == total
    assert [tuple(u) for u in users] == [(1, "Alice", None), (2, "bob", None)]  # guests' nicks, kept
    assert version is not None and version >= "0002"

    carol = LineClient(server.host, server.port, json_mode=True)
    carol.send("/nick carol", "/join dev")
    backlog = carol.events_until("history_end", room="dev")
    assert [e["text"] for e in backlog if e.get("history")][-1] == "old message 299"
    assert next(e for e in backlog if e["type"] == "joined" and e["room"] == "dev")["topic"] == "Dev talk"
    carol.send("/history lobby 500 after 0")
    lobby = carol.events_until("history_end", room="lobby")
    assert len([e for e in lobby if e.get("history")]) == 150

    alice = server.client()
    alice.register_account("alice", PASSWORD)  # an old guest nick becomes an account, keeping its row
    alice.send("/history @bob 500 after 0")  # old private messages name no accounts: no one's history
    alice.expect("[error no_such_account]")
    bob = server.client()
    bob.register_account("bob", PASSWORD)
    bob.send("/history @alice 500 after 0")
    bob.expect("No earlier private messages with alice.")
    server.stop()
    assert _count(any_db, "messages") == total
    engine = make_engine(any_db)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, nick_key, password_hash IS NOT NULL FROM users ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows][:2] == [(1, "alice", True), (2, "bob", True)]  # their rows, their ids
    assert [tuple(r)[1:] for r in rows][2:] == [("carol", False)]


def test_account_ids_are_never_reused_after_an_upgrade(make_server: Callable[..., ServerThread],
                                                       sqlite_db: str) -> None:
    """SQLite reuses the largest rowid of a deleted row unless the table says AUTOINCREMENT: the upgrade makes it
    so, or a deleted account's id (its private conversations) would go to the next one registered."""
    _turn_one_database(sqlite_db)
    server = make_server()
    dave = server.client()
    dave.register_account("dave", PASSWORD)
    server.stop()
    engine = make_engine(sqlite_db)
    with engine.begin() as conn:
        first = conn.execute(text("SELECT id FROM users WHERE nick_key = 'dave'")).scalar()
        conn.execute(text("DELETE FROM users WHERE nick_key = 'dave'"))
    engine.dispose()
    server = make_server()
    dave = server.client()
    dave.register_account("dave", PASSWORD)
    server.stop()
    engine = make_engine(sqlite_db)
    with engine.connect() as conn:
        second = conn.execute(text("SELECT id FROM users WHERE nick_key = 'dave'")).scalar()
    engine.dispose()
    assert first is not None and second is not None and second > first
