#!/usr/bin/env python3
"""EXPERIMENT, not part of the server: `chat serve` with the changes proposed in docs/PERFORMANCE.md applied
from outside (monkeypatching), so their effect can be measured before anyone edits the server.

    python benchmarks/experiments/tuned.py serve --db X.sqlite --port 16690 --rate 0      # all changes on
    TUNE=gc python benchmarks/experiments/tuned.py serve ...                               # only some of them

TUNE is a comma-separated list (default "gc,fastwrite,jobref,ckpt"):

* gc         after the imports, `gc.collect(); gc.freeze()` (the ~300k objects of SQLAlchemy, pydantic, Alembic,
             Typer leave the collector's generations) and `gc.set_threshold(100_000, 50, 1000)`: the cyclic
             collector ran every 700 container allocations and, in W2, took about 20 % of the GIL.
  gc10k      the same with a gen-0 threshold of 10,000; gcfreeze: the freeze alone (default thresholds).
* fastwrite  messages go in through the DB-API cursor (`executemany` of plain tuples) instead of a Core
             `insert()` with per-row bind processing; `created_at` is formatted as SQLAlchemy stores it on
             SQLite ('YYYY-MM-DD HH:MM:SS.ffffff', UTC), the date part cached per second. SQLite only.
* ckpt       SQLite's automatic WAL checkpoint (every 1000 pages, run inside the commit that crosses the
             mark, on the writer thread) is turned off on the server's connections; a background thread runs
             `PRAGMA wal_checkpoint(PASSIVE)` once a second on its own connection instead (it never blocks the
             writer). Aimed at W4's latency tail.
* jobref     the storage thread drops its reference to the last job once it is handed back, so the last
             committed outbox (after a connect storm, several MB of member tuples) is not kept alive.

Used by benchmarks/experiments/ab.sh and by run.sh through CHAT_SERVE_CMD. Private internals are patched:
if the server changes shape, this file may stop applying; it fails loudly rather than measuring nothing.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
import time

TUNE = {t for t in os.environ.get("TUNE", "gc,fastwrite,jobref,ckpt").split(",") if t}

import chat.cli.main  # noqa: E402
import chat.server.app  # noqa: E402
import chat.server.loop  # noqa: E402
from chat.server import storage_worker as _sw  # noqa: E402
from chat.storage import repository as _repo  # noqa: E402

if "fastwrite" in TUNE:
    _orig_write = _repo.ChatStore.write
    _day = [-1, ""]
    _SQL = ("INSERT INTO messages (id, kind, room_id, sender, recipient, text, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)")

    def _stamp(t: float) -> str:
        # exactly what SQLAlchemy's SQLite DATETIME stores for datetime.fromtimestamp(t, UTC) (same rounding)
        frac, whole = math.modf(t)
        us = round(frac * 1e6)
        sec = int(whole)
        if us >= 1_000_000:
            sec, us = sec + 1, us - 1_000_000
        if sec != _day[0]:
            _day[0], _day[1] = sec, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
        return f"{_day[1]}.{us:06d}"

    def _write(self: _repo.ChatStore, batch: _repo.WriteBatch) -> None:
        messages = batch.messages
        if not messages or self._dialect != "sqlite":
            _orig_write(self, batch)
            return
        rows = [(m.id, m.kind.value, room_id, m.nick, m.to, m.text, _stamp(m.time)) for m, room_id in messages]
        batch.messages = []
        try:
            with self._writer.begin() as conn:
                # rooms, users and topics the usual way (rooms first: the messages refer to them)
                rest = _repo.WriteBatch(rooms=batch.rooms, users=batch.users, topics=batch.topics)
                if rest:
                    _write_rest(self, conn, rest)
                conn.connection.driver_connection.executemany(_SQL, rows)
        finally:
            batch.messages = messages

    def _write_rest(self: _repo.ChatStore, conn, batch: _repo.WriteBatch) -> None:
        """Rooms, users and topics as ChatStore.write does them (rare: not on the hot path)."""
        from sqlalchemy import update

        if batch.rooms:
            conn.execute(self._insert_ignoring_duplicates(_repo.ROOMS), [
                {"id": r.id, "name": r.name, "name_key": r.name.lower(), "topic": r.topic,
                 "topic_set_by": r.topic_set_by,
                 "topic_set_at": _repo.to_datetime(r.topic_set_at) if r.topic_set_at else None,
                 "created_at": _repo.to_datetime(r.created_at)}
                for r in batch.rooms])
        if batch.users:
            conn.execute(self._upsert_users(), _repo._latest_per_user(batch.users))
        for t in batch.topics:
            conn.execute(update(_repo.ROOMS).where(_repo.ROOMS.c.id == t.room_id).values(
                topic=t.topic, topic_set_by=t.nick, topic_set_at=_repo.to_datetime(t.time)))

    _repo.ChatStore.write = _write

if "jobref" in TUNE:
    def _run(self: _sw.StorageWorker) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._execute(job)
            self.done.append(job)
            job = None  # the loop owns it now; holding it here keeps the whole outbox alive until the next
            self.done_event.set()
            self.notify()

    if not hasattr(_sw.StorageWorker, "_execute"):
        raise SystemExit("tuned.py: StorageWorker has changed; update the experiment")
    _sw.StorageWorker._run = _run

if "ckpt" in TUNE:
    import sqlite3
    import threading

    from sqlalchemy import event

    from chat.storage import database as _db

    _orig_tune = _db._tune_sqlite

    def _tune(engine, busy_timeout_ms: int) -> None:
        _orig_tune(engine, busy_timeout_ms)

        @event.listens_for(engine, "connect")
        def _no_autocheckpoint(dbapi_connection, _record) -> None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        path = engine.url.database
        if not path or path == ":memory:":
            return

        def _checkpointer() -> None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            while True:
                time.sleep(1.0)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

        threading.Thread(target=_checkpointer, name="chat-checkpoint", daemon=True).start()

    _db._tune_sqlite = _tune

GC_TUNES = {"gc": 100_000, "gc10k": 10_000, "gcfreeze": None}
if TUNE & GC_TUNES.keys():
    import alembic.command  # noqa: F401  (imported by `chat serve` anyway: freeze it too)
    import sqlalchemy.dialects.sqlite  # noqa: F401

    gc.collect()
    gc.freeze()
    threshold = next(GC_TUNES[t] for t in GC_TUNES if t in TUNE)
    if threshold:
        gc.set_threshold(threshold, 50, 1000)

sys.argv[0] = "chat"
chat.cli.main.main()
