"""SQLite's WAL checkpoints, off the writer's commit path.

By default SQLite checkpoints inside the commit that takes the write-ahead log past 1000 pages: that commit, on
the server's single writer, copies the log into the database and fsyncs both, and every message waiting for it
(and every delivery after it) waits too; on a shared disk an fsync took milliseconds. A server's connections set
`wal_autocheckpoint` to a large safety net instead (`AUTOCHECKPOINT_PAGES`), and `WalCheckpointer` runs a PASSIVE
checkpoint once a second on a connection of its own: PASSIVE never waits for the writer or for readers, so a
commit never waits for it (the first round's A/B: W4's p99 1.66 → 1.15 ms; docs/PERFORMANCE.md). The driver
releases the GIL while SQLite works. A checkpoint that fails (a full disk, a read-only file) is tried again a
second later; the writer's own commits say what is wrong, so it is logged once per cause.
"""

from __future__ import annotations

import logging
import sqlite3

from sqlalchemy import Engine

from chat.storage.periodic import PeriodicThread

log = logging.getLogger("chat.storage")

CHECKPOINT_INTERVAL_S = 1.0
AUTOCHECKPOINT_PAGES = 16384  # the writer checkpoints itself only past this (64 MiB at 4 KiB pages)


class WalCheckpointer(PeriodicThread):
    def __init__(self, engine: Engine, interval: float = CHECKPOINT_INTERVAL_S) -> None:
        super().__init__("chat-checkpoint", interval)
        self.engine = engine
        self.checkpoints = 0  # done so far
        self.last: tuple[int, int, int] | None = None  # SQLite's answer to the last: (busy, log frames, copied)

    def _run(self) -> None:
        last_problem = ""
        connection = None
        while not self._stop.wait(self.interval):
            try:
                if connection is None:
                    connection = self.engine.raw_connection()  # with the engine's pragmas
                db: sqlite3.Connection = connection.driver_connection  # type: ignore[assignment]
                row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.last = tuple(row)
                self.checkpoints += 1
                last_problem = ""
            except (sqlite3.Error, OSError) as e:
                if str(e) != last_problem:
                    last_problem = str(e)
                    log.warning("storage: a background WAL checkpoint failed (tried again each second): %s", e)
                if connection is not None:
                    connection.close()  # back to the pool; a fresh one next time
                    connection = None
        if connection is not None:
            connection.close()
