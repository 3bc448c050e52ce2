"""Migration 0003 (accounts) on a database made before it (by the chat of revision 0002, search): every message,
room and nick is still there, found by search too, and a server on it serves the old history, lets an old nick
be registered, and keeps old private messages private."""

from __future__ import annotations

import time
from collections.abc import Callable

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from chat.storage.database import alembic_config, make_engine
from harness import LineClient, ServerThread, database_before_accounts

PASSWORD = "correct horse battery"
COUNT = 300  # messages: 270 in rooms (lobby: odd ids, dev: even), every tenth private from alice to bob


def _rows(db: str, query: str) -> list[tuple[object, ...]]:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def test_a_database_made_before_accounts_upgrades_without_losing_anything(
        make_server: Callable[..., ServerThread], any_db: str) -> None:
    before = database_before_accounts(any_db, COUNT)
    before.dispose()
    texts_before = _rows(any_db, "SELECT id, text FROM messages ORDER BY id")
    assert len(texts_before) == COUNT
    server = make_server(db=any_db)  # chat serve upgrades the database at start
    engine = make_engine(any_db)
    try:
        assert {"password_hash", "registered_at", "admin"} <= {c["name"] for c in inspect(engine).get_columns("users")}
    finally:
        engine.dispose()
    assert _rows(any_db, "SELECT id, text FROM messages ORDER BY id") == texts_before
    assert _rows(any_db, "SELECT id, nick, password_hash FROM users ORDER BY id") == [
        (1, "Alice", None), (2, "bob", None)]  # the nicks seen: guests' nicks, kept
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()  # 0003 and every migration after it
    assert _rows(any_db, "SELECT version_num FROM alembic_version") == [(head,)]

    carol = LineClient(server.host, server.port, json_mode=True)
    carol.send("/nick carol", "/join dev")
    backlog = carol.events_until("history_end", room="dev")
    assert next(e for e in backlog if e["type"] == "joined" and e["room"] == "dev")["topic"] == "Dev talk"
    assert [e["text"] for e in backlog if e.get("history")][-1].startswith("common uniq298 ")
    carol.send("/history lobby 500 after 0")
    lobby = carol.events_until("history_end", room="lobby")
    assert len([e for e in lobby if e.get("history")]) == 150
    # the old messages are still found: at once on SQLite; on PostgreSQL once the server has indexed them again
    # (migration 0007 moved the index into messages), which its writer does while idle
    deadline = time.monotonic() + 30
    while True:
        carol.send('/search "uniq7"')
        found = carol.events_until("search_end")
        if not found[-1]["indexing"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not found[-1]["indexing"]
    assert [e["id"] for e in found if e.get("search")] == [7]

    alice = server.client()
    alice.register_account("alice", PASSWORD)  # an old guest nick becomes an account, keeping its row
    alice.send("/history @bob 500 after 0")  # old private messages name no accounts: in no one's history
    alice.expect("[error no_such_account]")
    bob = server.client()
    bob.register_account("bob", PASSWORD)
    bob.send("/history @alice 500 after 0")
    bob.expect("No earlier private messages with alice.")
    server.stop()
    assert _rows(any_db, "SELECT count(*) FROM messages") == [(COUNT,)]
    rows = _rows(any_db, "SELECT id, nick_key, password_hash IS NOT NULL FROM users ORDER BY id")
    assert rows[:2] == [(1, "alice", True), (2, "bob", True)]  # their rows, their ids
    assert [r[1:] for r in rows[2:]] == [("carol", False)]


def test_account_ids_are_never_reused_after_an_upgrade(make_server: Callable[..., ServerThread],
                                                       sqlite_db: str) -> None:
    """SQLite reuses the largest rowid of a deleted row unless the table says AUTOINCREMENT: the upgrade makes it
    so, or a deleted account's id (its private conversations) would go to the next one registered."""
    database_before_accounts(sqlite_db, 10).dispose()
    server = make_server()
    dave = server.client()
    dave.register_account("dave", PASSWORD)
    server.stop()
    (first,), = _rows(sqlite_db, "SELECT id FROM users WHERE nick_key = 'dave'")
    engine = make_engine(sqlite_db)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE nick_key = 'dave'"))
    engine.dispose()
    server = make_server()
    dave = server.client()
    dave.register_account("dave", PASSWORD)
    server.stop()
    (second,), = _rows(sqlite_db, "SELECT id FROM users WHERE nick_key = 'dave'")
    assert isinstance(first, int) and isinstance(second, int) and second > first
