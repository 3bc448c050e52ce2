"""The search index on a database made before it: migration 0002 keeps every message, the server starts at once,
and the backfill indexes every older message, newest first, once, beside a running server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, select

from chat.protocol.events import ChatMessage, MessageKind
from chat.search.query import parse_search
from chat.search.terms import terms
from chat.storage.database import make_engine, upgrade
from chat.storage.repository import MESSAGES, ChatStore, WriteBatch
from chat.storage.search import SearchScope, search_messages
from chat.storage.search_index import (
    PG_POSITION_MAX,
    SEARCH_TABLES,
    VECTOR_COLUMN,
    VECTOR_INDEX,
    backfill,
    backfill_step,
    quote_lexeme,
    tsvector_literal,
    unindexed_below,
)
from harness import LineClient, ServerThread, capture_logs, database_before_search, every_match

EVERYTHING = SearchScope.everything()


OLD_COLUMNS = ("id", "kind", "room_id", "sender", "recipient", "text", "created_at")  # what revision 0001 has


def all_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Every message, in the columns a database made before search has (later migrations add some)."""
    query = select(*(MESSAGES.c[name] for name in OLD_COLUMNS)).order_by(MESSAGES.c.id)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]



def test_the_migration_keeps_every_message_and_the_backfill_indexes_each_once(any_db: str) -> None:
    engine = database_before_search(any_db, 2500)
    before = all_rows(engine)
    with capture_logs() as logs:
        upgrade(engine)
    assert any("run `chat index`" in m for m in logs.messages())
    assert all_rows(engine) == before
    assert {"search_index_state"} | ({"messages_fts"} if engine.dialect.name == "sqlite" else set()) \
        <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert unindexed_below(conn) == 2501

    # still being indexed: older messages are not found yet, and the page says so; a new one is found at once
    page = search_messages(engine, parse_search("common"), EVERYTHING)
    assert page.messages == [] and page.unindexed_below == 2501
    ChatStore(engine).write(WriteBatch(messages=[(ChatMessage(2501, MessageKind.MESSAGE, "carol", "common new",
                                                              2e9, room="lobby"), 1)]))
    assert [m.id for m in search_messages(engine, parse_search("common"), EVERYTHING).messages] == [2501]

    progress: list[tuple[int, int]] = []
    with capture_logs() as logs:
        assert backfill(engine, batch=700, progress=lambda done, total: progress.append((done, total))) == 2500
    assert progress == [(700, 2500), (1400, 2500), (2100, 2500), (2500, 2500)]
    assert "search index: complete, 2500 older messages indexed" in "\n".join(logs.messages())
    assert all_rows(engine)[:2500] == before

    assert every_match(engine, "common") == list(range(2501, 0, -1))  # each message once, newest first
    for i in range(1, 2501, 7):
        assert every_match(engine, f'"uniq{i}"') == [i]
    assert every_match(engine, "numero") == [i for i in range(2500, 0, -1) if i % 4 == 0]
    assert every_match(engine, "東京 🎉") == [i for i in range(2500, 0, -1) if i % 4 == 1]
    page = search_messages(engine, parse_search("common"), EVERYTHING)
    assert page.unindexed_below is None
    assert backfill(engine) == 0  # done: nothing more to do
    engine.dispose()


def test_backfills_side_by_side_index_nothing_twice(any_db: str) -> None:
    one = database_before_search(any_db, 1200)
    upgrade(one)
    other = make_engine(any_db)
    steps = 0
    while True:
        a, b = backfill_step(one, 150), backfill_step(other, 110)
        steps += 1
        if a.below is None and b.below is None:
            break
    assert steps < 10
    assert every_match(one, "common") == list(range(1200, 0, -1))
    one.dispose()
    other.dispose()


def test_the_server_starts_on_a_database_still_being_indexed(make_server: Callable[..., ServerThread],
                                                               any_db: str) -> None:
    database_before_search(any_db, 3000).dispose()
    # it migrates the database at start: the index is empty (and stays so: not indexed by the server while idle)
    server = make_server(db=any_db, backlog=5, index_when_idle=0)
    alice = LineClient(server.host, server.port, json_mode=True)
    alice.register("alice")
    backlog = alice.events_until("history_end", room="lobby")
    assert [e["id"] for e in backlog if e.get("history")] == [2991, 2993, 2995, 2997, 2999]
    engine = make_engine(any_db)
    alice.send("/msg #lobby common, said after the upgrade")
    said = alice.expect_event("message", room="lobby")["id"]
    assert every_match(engine, "common") == [said]

    assert backfill(engine, batch=500) == 3000  # beside the running server, as `chat index` does
    alice.send("/msg #lobby common again")
    again = alice.expect_event("message", room="lobby")["id"]
    assert every_match(engine, "common") == [again, said, *range(3000, 0, -1)]
    engine.dispose()


def test_the_server_indexes_older_messages_itself_while_idle_with_progress_logged(
    make_server: Callable[..., ServerThread], any_db: str,
) -> None:
    """No `chat index` needed: the writer fills the index in short batches whenever it has nothing to write,
    while clients chat; what they say meanwhile is found at once, and every older message ends up found once."""
    database_before_search(any_db, 3000).dispose()
    with capture_logs() as logs:
        server = make_server(db=any_db, index_when_idle=0.05)
        alice = LineClient(server.host, server.port, json_mode=True)
        alice.register("alice")
        said = []
        for i in range(5):  # writes between the batches: each is served first, then the backfill goes on
            alice.send(f"/msg #lobby common live {i}")
            said.append(alice.expect_event("message", text=f"common live {i}")["id"])
        engine = make_engine(any_db)
        deadline = time.monotonic() + 60
        while search_messages(engine, parse_search("common"), EVERYTHING).unindexed_below is not None:
            assert time.monotonic() < deadline, "the server did not index the older messages"
            time.sleep(0.05)
    assert every_match(engine, "common") == [*reversed(said), *range(3000, 0, -1)]
    assert every_match(engine, '"uniq1234"') == [1234]
    text = "\n".join(logs.messages())
    assert "search index: indexing 3000 older messages while idle, newest first" in text
    assert "search index: complete, 3000 older messages indexed while idle" in text
    alice.send("/search uniq2999")
    assert alice.expect_event("search_end") | {"query": None} == {
        "type": "search_end", "query": None, "count": 1, "more": False, "before": None, "indexing": False}
    engine.dispose()


def test_the_index_tables_are_known_to_env_py(any_db: str) -> None:
    """`alembic check` skips exactly the index's tables (SQLite) or column (PostgreSQL): the rest is models."""
    engine = make_engine(any_db)
    upgrade(engine)
    from chat.storage.models import Base

    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables - SEARCH_TABLES == set(Base.metadata.tables)
    columns = {c["name"] for c in inspect(engine).get_columns("messages")}
    assert columns - {VECTOR_COLUMN} == set(MESSAGES.c.keys())
    if engine.dialect.name == "sqlite":
        assert tables & SEARCH_TABLES and VECTOR_COLUMN not in columns
    else:
        assert not tables & SEARCH_TABLES and VECTOR_COLUMN in columns
        assert VECTOR_INDEX in {i["name"] for i in inspect(engine).get_indexes("messages")}
    engine.dispose()


@given(st.text(st.characters(max_codepoint=0x7F), max_size=80) | st.text(max_size=40))
def test_the_tsvector_of_ascii_takes_a_shortcut_to_the_same_literal(text: str) -> None:
    general = " ".join(f"'{quote_lexeme(t)}':{min(i, PG_POSITION_MAX)}" for i, t in enumerate(terms(text), 1))
    assert tsvector_literal(text) == general
