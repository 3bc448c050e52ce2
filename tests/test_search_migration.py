"""Migration 0007 on a database indexed by the chat of revision 0006: PostgreSQL's search terms move from the
table `message_search` into `messages.search_vector` (SQLite: nothing changes). Every message is kept, the server
starts at once on it, new messages are found at once, and the backfill indexes every older message again, newest
first, once, with progress; downgrading gives the old table back, to be indexed again the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from alembic import command
from sqlalchemy import Engine, inspect, text

from chat.protocol.events import ChatMessage, MessageKind
from chat.search.query import parse_search
from chat.storage.database import alembic_config, make_engine, upgrade
from chat.storage.repository import ChatStore, WriteBatch
from chat.storage.search import SearchScope, search_messages
from chat.storage.search_index import VECTOR_COLUMN, backfill, unindexed_below
from harness import LineClient, ServerThread, capture_logs, database_before_vector_column, every_match

EVERYTHING = SearchScope.everything()
COUNT = 1200



def texts(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, room_id, sender, text FROM messages ORDER BY id"))]


def test_0007_moves_the_terms_into_messages_and_the_backfill_indexes_them_again(any_db: str) -> None:
    engine = database_before_vector_column(any_db, COUNT)
    before = texts(engine)
    if engine.dialect.name == "postgresql":  # indexed, as revision 0006 left it
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM message_search")).scalar() == COUNT
    with capture_logs() as logs:
        upgrade(engine)
    assert texts(engine) == before
    tables = set(inspect(engine).get_table_names())
    columns = {c["name"] for c in inspect(engine).get_columns("messages")}
    with engine.connect() as conn:
        pending = unindexed_below(conn)
    if engine.dialect.name == "sqlite":  # nothing to do: FTS5 stays as it was
        assert "messages_fts" in tables and VECTOR_COLUMN not in columns and pending is None
        assert every_match(engine, "common") == list(range(COUNT, 0, -1))
        engine.dispose()
        return
    assert "message_search" not in tables and VECTOR_COLUMN in columns
    assert pending == COUNT + 1
    assert any("messages up to id 1200 are not searchable until indexed again" in m for m in logs.messages())
    page = search_messages(engine, parse_search("common"), EVERYTHING)
    assert page.messages == [] and page.unindexed_below == COUNT + 1  # being indexed, and the page says so
    ChatStore(engine).write(WriteBatch(messages=[(ChatMessage(COUNT + 1, MessageKind.MESSAGE, "carol", "common new",
                                                              2e9, room="lobby"), 1)]))
    assert every_match(engine, "common") == [COUNT + 1]  # a new message: found at once

    progress: list[tuple[int, int]] = []
    with capture_logs() as logs:
        assert backfill(engine, batch=500, progress=lambda done, total: progress.append((done, total))) == COUNT
    assert progress == [(500, COUNT), (1000, COUNT), (COUNT, COUNT)]
    assert "search index: complete, 1200 older messages indexed" in "\n".join(logs.messages())
    assert texts(engine)[:COUNT] == before
    assert every_match(engine, "common") == list(range(COUNT + 1, 0, -1))  # each once, newest first
    assert every_match(engine, '"uniq77"') == [77]
    assert every_match(engine, "東京 🎉") == [i for i in range(COUNT, 0, -1) if i % 4 == 1]
    assert every_match(engine, "cafe numero") == [i for i in range(COUNT, 0, -1) if i % 4 == 0]
    engine.dispose()


def test_the_server_starts_on_it_and_indexes_it_again_while_idle(make_server: Callable[..., ServerThread],
                                                                 any_db: str) -> None:
    database_before_vector_column(any_db, COUNT).dispose()
    server = make_server(db=any_db, index_when_idle=0.05)  # migrates at start
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.register("alice")
    alice.send("/msg #lobby common, said after the upgrade")
    said = alice.expect_event("message", text="common, said after the upgrade")["id"]
    engine = make_engine(any_db)
    deadline = time.monotonic() + 60
    while search_messages(engine, parse_search("common"), EVERYTHING).unindexed_below is not None:
        assert time.monotonic() < deadline, "the server did not index the older messages again"
        time.sleep(0.05)
    assert every_match(engine, "common") == [said, *range(COUNT, 0, -1)]
    alice.send('/search "uniq1111"')
    found = alice.events_until("search_end")
    assert [e["id"] for e in found if e.get("search")] == [1111] and not found[-1]["indexing"]
    engine.dispose()


def test_0007_downgrades_to_the_table_and_upgrades_again(any_db: str) -> None:
    engine = database_before_vector_column(any_db, 300)
    upgrade(engine)
    backfill(engine)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    tables = set(inspect(engine).get_table_names())
    columns = {c["name"] for c in inspect(engine).get_columns("messages")}
    assert VECTOR_COLUMN not in columns
    assert ("message_search" in tables) == (engine.dialect.name == "postgresql")
    upgrade(engine)
    backfill(engine)
    assert every_match(engine, "common") == list(range(300, 0, -1))
    engine.dispose()
