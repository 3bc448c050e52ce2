"""Databases as older versions of chat left them, for testing what a newer one does with them.

The rows are written with plain SQL naming only the columns that version had (today's `ChatStore` writes
today's columns, which an older schema does not have): rooms, the nicks seen, room and private messages.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, Engine, text

from chat.storage.database import alembic_config, make_engine

BEFORE_SEARCH_TEXTS = ("Café numéro {i}", "東京 {i} 🎉", "plain words {i}", "don't {i} stop")
_ROOMS = text("INSERT INTO rooms (id, name, name_key, topic, topic_set_by, topic_set_at, created_at) "
              "VALUES (:id, :name, :key, :topic, :by, :at, :created)")
_USERS = text("INSERT INTO users (nick, nick_key, first_seen, last_seen) VALUES (:nick, :key, :t, :t)")
_MESSAGES = text("INSERT INTO messages (id, kind, room_id, sender, recipient, text, created_at) "
                 "VALUES (:id, :kind, :room_id, :sender, :recipient, :text, :t)")


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _upgraded_to(db: str, revision: str) -> Engine:
    engine = make_engine(db)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return engine


def _old_messages(conn: Connection, count: int) -> list[tuple[int, str]]:
    """Rooms lobby (odd ids) and dev (even ids), every tenth message private from alice to bob; message i says
    "common uniq<i> " and one of BEFORE_SEARCH_TEXTS. Returns (id, text) of each."""
    conn.execute(_ROOMS, [{"id": 1, "name": "lobby", "key": "lobby", "topic": None, "by": None, "at": None,
                           "created": _at(0.0)},
                          {"id": 2, "name": "dev", "key": "dev", "topic": "Dev talk", "by": "bob", "at": _at(1e9),
                           "created": _at(0.0)}])
    conn.execute(_USERS, [{"nick": "Alice", "key": "alice", "t": _at(1e9)}, {"nick": "bob", "key": "bob",
                                                                            "t": _at(1e9)}])
    rows = []
    for i in range(1, count + 1):
        said = f"common uniq{i} " + BEFORE_SEARCH_TEXTS[i % len(BEFORE_SEARCH_TEXTS)].format(i=i)
        private = i % 10 == 0
        rows.append({"id": i, "kind": "private" if private else "message",
                     "room_id": None if private else (1 if i % 2 else 2), "sender": "alice" if private else "bob",
                     "recipient": "bob" if private else None, "text": said, "t": _at(1e9 + i)})
    for start in range(0, len(rows), 500):
        conn.execute(_MESSAGES, rows[start:start + 500])
    return [(r["id"], r["text"]) for r in rows]  # type: ignore[misc]


def database_before_search(db: str, count: int) -> Engine:
    """A database at the schema before search (migration 0001) holding `count` messages, written the way that
    version's server wrote them (see `_old_messages`)."""
    engine = _upgraded_to(db, "0001")
    with engine.begin() as conn:
        _old_messages(conn, count)
    return engine


def database_before_accounts(db: str, count: int) -> Engine:
    """A database at the schema before accounts (migration 0002, search), as that version's server left it: the
    same rooms, nicks and messages, each message in the search index (its writer indexed them as it stored them:
    on PostgreSQL into the table `message_search` of that version, which migration 0007 replaced)."""
    from chat.storage.search_index import FTS_INSERT, fts_document, tsvector_literal

    engine = _upgraded_to(db, "0002")
    with engine.begin() as conn:
        rows = _old_messages(conn, count)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(FTS_INSERT, [(i, fts_document(said)) for i, said in rows])
        else:
            conn.execute(text("INSERT INTO message_search (message_id, vector) VALUES (:id, CAST(:v AS tsvector))"),
                         [{"id": i, "v": tsvector_literal(said)} for i, said in rows])
    return engine


def database_before_vector_column(db: str, count: int) -> Engine:
    """A database at migration 0006 (before 0007 moved PostgreSQL's search terms into `messages`), every message
    indexed as that version's writer left it: the messages of `database_before_accounts`, upgraded to 0006."""
    engine = database_before_accounts(db, count)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0006")
    return engine
