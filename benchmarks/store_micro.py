#!/usr/bin/env python3
"""The storage write path without the network: `ChatStore.write` (what the server's writer thread calls) on a
fresh SQLite database, for several batch sizes, beside plain `sqlite3` executemany of the same rows.

    python store_micro.py DB_PATH [--messages 100000]

Prints one JSON object: messages/s per batch size for both paths. Run with the project's Python (it imports
`chat`). It tells how much of the server's storage cost is SQLite and how much is the Python above it.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db", type=Path)
    ap.add_argument("--messages", type=int, default=100_000)
    args = ap.parse_args()

    from chat.protocol.events import ChatMessage, MessageKind
    from chat.storage.database import make_engine, upgrade
    from chat.storage.repository import ChatStore, StoredRoom, WriteBatch

    n = args.messages
    results: dict[str, dict[str, float]] = {"chatstore": {}, "sqlite3": {}}
    now = time.time()
    for batch in (1, 10, 100, 1000, 10000):
        count = min(n, batch * 2000)  # batches of 1 are slow: fewer of them
        # ChatStore.write, as the server's writer thread calls it
        _fresh(args.db)
        engine = make_engine(str(args.db))
        upgrade(engine)
        store = ChatStore(engine)
        store.write(WriteBatch(rooms=[StoredRoom(1, "bench", None, None, None, now)]))
        messages = [
            (ChatMessage(i, MessageKind.MESSAGE, f"u{i % 100}", f"BENCH:{i % 100}:{i}:{i * 7919}", now + i * 1e-6,
                         room="bench"), 1)
            for i in range(1, count + 1)
        ]
        t0 = time.perf_counter()
        for start in range(0, count, batch):
            store.write(WriteBatch(messages=messages[start:start + batch]))
        elapsed = time.perf_counter() - t0
        results["chatstore"][str(batch)] = round(count / elapsed)
        engine.dispose()

        # the same rows with the sqlite3 module alone (same schema, pragmas and BEGIN IMMEDIATE)
        _fresh(args.db)
        engine = make_engine(str(args.db))
        upgrade(engine)
        ChatStore(engine).write(WriteBatch(rooms=[StoredRoom(1, "bench", None, None, None, now)]))
        engine.dispose()
        conn = sqlite3.connect(args.db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        rows = [
            (m.id, "message", 1, m.nick, None, m.text, "2026-11-24 08:00:00.000000") for m, _ in messages
        ]
        t0 = time.perf_counter()
        for start in range(0, count, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO messages (id, kind, room_id, sender, recipient, text, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", rows[start:start + batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        results["sqlite3"][str(batch)] = round(count / elapsed)
        conn.close()
    _fresh(args.db)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
