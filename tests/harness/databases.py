"""Databases as older versions of chat left them, for testing what a newer one does with them."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine

from chat.protocol.events import ChatMessage, MessageKind
from chat.storage.database import alembic_config, make_engine
from chat.storage.repository import ChatStore, StoredRoom, WriteBatch

BEFORE_SEARCH_TEXTS = ("Café numéro {i}", "東京 {i} 🎉", "plain words {i}", "don't {i} stop")


def database_before_search(db: str, count: int) -> Engine:
    """A database at the schema before search (migration 0001) holding `count` messages, written the way that
    version's server wrote them: rooms lobby (odd ids) and dev (even ids), every tenth a private message from
    alice to bob. Message i says "common uniq<i> " and one of BEFORE_SEARCH_TEXTS."""
    engine = make_engine(db)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    store = ChatStore(engine, search_index=False)
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0),
                                  StoredRoom(2, "dev", None, None, None, 0.0)]))
    batch = WriteBatch()
    for i in range(1, count + 1):
        text = f"common uniq{i} " + BEFORE_SEARCH_TEXTS[i % len(BEFORE_SEARCH_TEXTS)].format(i=i)
        if i % 10 == 0:
            batch.messages.append((ChatMessage(i, MessageKind.PRIVATE, "alice", text, 1e9 + i, to="bob"), None))
        else:
            room = "lobby" if i % 2 else "dev"
            batch.messages.append((ChatMessage(i, MessageKind.MESSAGE, "bob", text, 1e9 + i, room=room),
                                   1 if i % 2 else 2))
        if len(batch.messages) == 500:
            store.write(batch)
            batch = WriteBatch()
    store.write(batch)
    return engine
