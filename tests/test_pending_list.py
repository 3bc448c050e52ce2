"""PostgreSQL: the search index's pending list is moved into the index by a thread of its own
(chat.storage.pending_list), beside the writer, and every message stays found."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from chat.protocol.events import ChatMessage, MessageKind
from chat.storage.database import make_engine, upgrade
from chat.storage.pending_list import PendingListCleaner
from chat.storage.repository import ChatStore, StoredRoom, WriteBatch
from chat.storage.search_index import VECTOR_INDEX
from harness import ServerThread, capture_logs, every_match, wait_for

pytestmark = pytest.mark.postgres


def _messages(first: int, n: int) -> list[tuple[ChatMessage, int | None]]:
    return [(ChatMessage(i, MessageKind.MESSAGE, "alice", f"common word{i} and more", 1_700_000_000.0 + i,
                         room="lobby"), 1) for i in range(first, first + n)]


def _pending_pages_moved(engine: Engine) -> int:
    """Empties the pending list itself: how many pages it held."""
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT gin_clean_pending_list('{VECTOR_INDEX}'::regclass)")).scalar() or 0



def test_the_cleaner_moves_the_pending_list_into_the_index_beside_the_writer(postgres_db: str) -> None:
    engine = make_engine(postgres_db)
    upgrade(engine)
    store = ChatStore(engine)
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=_messages(1, 1000)))
    cleaner = PendingListCleaner(engine, interval=0.02, idle_interval=0.02)
    cleaner.start()
    try:
        wait_for(lambda: cleaner.pages > 0, 10, "the first cleaning")
        for start in range(1001, 3001, 500):  # the writer goes on meanwhile, its entries cleaned as they come
            store.write(WriteBatch(messages=_messages(start, 500)))
        cleaned = cleaner.cleanings
        wait_for(lambda: cleaner.cleanings >= cleaned + 2, 10, "two more cleanings, after the last write")
    finally:
        cleaner.stop()
    assert not cleaner._thread.is_alive()
    assert _pending_pages_moved(engine) == 0  # nothing was left for anyone else to move
    # the index is in step: every message found by its own word and by the common one, once each, newest first
    assert every_match(engine, "common") == list(range(3000, 0, -1))
    for i in (1, 999, 1000, 1001, 2500, 3000):
        assert every_match(engine, f'"word{i}"') == [i]
    store.close()
    engine.dispose()


def test_without_the_cleaner_the_list_waits_for_the_writer(postgres_db: str) -> None:
    """What the cleaner is for: below gin_pending_list_limit, PostgreSQL leaves new entries in the list (every
    search reads it) until some INSERT takes it past the limit and moves it all, in the writer's commit."""
    engine = make_engine(postgres_db)
    upgrade(engine)
    store = ChatStore(engine)
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=_messages(1, 1000)))
    assert _pending_pages_moved(engine) > 0
    assert every_match(engine, '"word500"') == [500]
    store.close()
    engine.dispose()


def test_a_role_that_may_not_clean_leaves_it_to_the_writer(postgres_db: str) -> None:
    """Only the index's owner may clean it: a server running as another role says so once and stops trying (its
    INSERTs move the list as PostgreSQL does by default), and its messages are still found."""
    owner = make_engine(postgres_db)
    upgrade(owner)
    role = f"chat_test_writer_{uuid.uuid4().hex[:10]}"
    with owner.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT SELECT, INSERT ON messages, search_index_state TO "{role}"'))
        conn.commit()
    engine = make_engine(make_url(postgres_db).set(username=role).render_as_string(hide_password=False))
    try:
        store = ChatStore(engine)
        ChatStore(owner).write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)]))
        store.write(WriteBatch(messages=_messages(1, 200)))
        cleaner = PendingListCleaner(engine, interval=0.02)
        with capture_logs() as logs:
            cleaner.start()
            wait_for(lambda: not cleaner._thread.is_alive(), 10, "the cleaner to give up")
        assert cleaner.cleanings == 0
        assert any("may not clean the search index's pending list" in m for m in logs.messages())
        store.write(WriteBatch(messages=_messages(201, 10)))
        assert every_match(owner, '"word205"') == [205]
        store.close()
    finally:
        engine.dispose()
        with owner.connect() as conn:
            conn.execute(text(f'REVOKE ALL ON messages, search_index_state FROM "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
            conn.commit()
        owner.dispose()


def test_the_server_cleans_in_the_background(make_server: Callable[..., ServerThread], postgres_db: str) -> None:
    server = make_server(db=postgres_db)
    cleaner = server.server._cleaner
    assert cleaner is not None
    alice = server.client("alice", json_mode=True)
    alice.send("/join dev")
    alice.expect_event("joined", room="dev")
    for i in range(20):
        alice.send(f"/msg #dev needle{i} in the haystack")
    alice.sync()
    wait_for(lambda: cleaner.pages > 0, 10, "a cleaning of the messages' entries")
    alice.send("/search needle7")
    found = alice.events_until("search_end")
    assert [e["text"] for e in found if e.get("search")] == ["needle7 in the haystack"]
    server.stop()
    assert server.server._cleaner is None  # stopped with the server
    assert not cleaner._thread.is_alive()
