"""WAL checkpoints off the writer's commit path: the server's SQLite connections leave them to a thread of their
own (chat.storage.checkpoint), which copies the log into the database while the writer goes on committing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chat.protocol.events import ChatMessage, MessageKind
from chat.storage.checkpoint import AUTOCHECKPOINT_PAGES, WalCheckpointer
from chat.storage.database import make_engine, upgrade
from chat.storage.repository import ChatStore, StoredRoom, WriteBatch
from harness import ServerThread, wait_for


def _messages(first: int, n: int) -> list[tuple[ChatMessage, int | None]]:
    return [(ChatMessage(i, MessageKind.MESSAGE, "alice", f"message {i} " + "x" * 500, 1_700_000_000.0 + i,
                         room="lobby"), 1) for i in range(first, first + n)]


def test_the_writer_leaves_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "chat.sqlite"), checkpoint_pages=AUTOCHECKPOINT_PAGES)
    upgrade(engine)
    store = ChatStore(engine)
    store.write(WriteBatch(rooms=[StoredRoom(1, "lobby", None, None, None, 0.0)], messages=_messages(1, 10)))
    for start in range(11, 6011, 500):  # ~3 MB of log: past SQLite's default of 1000 pages
        store.write(WriteBatch(messages=_messages(start, 500)))
    writer = store._raw.driver_connection
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES
    # nothing was copied into the database yet: the commits did not checkpoint
    wal = tmp_path / "chat.sqlite-wal"
    assert wal.stat().st_size > 1000 * 4096
    checkpointer = WalCheckpointer(engine, interval=0.05)
    checkpointer.start()
    try:
        wait_for(lambda: checkpointer.last is not None and checkpointer.last[1] > 1000, 10, "a checkpoint")
        assert checkpointer.last is not None
        busy, frames, copied = checkpointer.last
        assert (busy, copied) == (0, frames)  # the whole log went into the database, nobody waited
        store.write(WriteBatch(messages=_messages(6011, 10)))  # and the writer goes on
    finally:
        checkpointer.stop()
    store.close()
    assert store.history(1, "lobby", 1)[0][0].id == 6020


def test_the_server_checkpoints_in_the_background(make_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    server = make_server(db=str(tmp_path / "chat.sqlite"))
    server.client("alice").sync()
    checkpointer = server.server._checkpointer
    assert checkpointer is not None
    done = checkpointer.checkpoints
    wait_for(lambda: checkpointer.checkpoints > done, 10, "a checkpoint")
    server.stop()
    assert server.server._checkpointer is None  # stopped with the server
