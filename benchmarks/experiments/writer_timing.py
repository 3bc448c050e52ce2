#!/usr/bin/env python3
"""EXPERIMENT, not part of the server: `chat serve` whose storage writer records where its time goes, to find what
the search index costs a PostgreSQL writer (docs/PERFORMANCE.md, "Search", the writer's time).

    CHAT_WRITER_TIMING=/tmp/timing.json python benchmarks/experiments/writer_timing.py serve --db URL ...
    CHAT_WRITER_TIMING=... CHAT_NO_INDEX=1 python benchmarks/experiments/writer_timing.py serve ...

Every second of writing it rewrites the file named by CHAT_WRITER_TIMING with totals since the start: commits,
messages, seconds in `ChatStore.write` (the writer's whole commit), in building the tsvector texts (Python), in
the statements (`_write_rows`: rows built, sent, executed) and, by difference, BEGIN and COMMIT; the slowest
commits; and the CPU seconds of the writer's PostgreSQL backend (from /proc: PostgreSQL must be on this machine),
which tells whether the writer waits on a busy backend or on the disk. CHAT_NO_INDEX=1 writes no search terms, as
experiments/no_index.py; CHAT_NO_CLEANER=1 starts no PendingListCleaner (the writer's INSERTs move
the GIN pending list, as before chat.storage.pending_list). It wraps `ChatStore` methods and fails loudly if they
are gone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import chat.cli.main
from chat.storage import repository

OUT = Path(os.environ.get("CHAT_WRITER_TIMING", "/tmp/chat-writer-timing.json"))
NO_INDEX = os.environ.get("CHAT_NO_INDEX") == "1"
NO_CLEANER = os.environ.get("CHAT_NO_CLEANER") == "1"
for name in ("write", "_write_rows", "__init__"):
    if not hasattr(repository.ChatStore, name) or not hasattr(repository, "tsvector_literal"):
        sys.exit(f"writer_timing.py: ChatStore.{name} or tsvector_literal is gone; update this experiment")

totals: dict[str, Any] = {"commits": 0, "messages": 0, "write_s": 0.0, "rows_s": 0.0, "vector_s": 0.0,
                          "slowest": [], "backend_cpu_s": 0.0}
_state: dict[str, Any] = {"last_dump": 0.0, "backend": None, "cpu0": None}
_init, _write, _write_rows, _vector = (repository.ChatStore.__init__, repository.ChatStore.write,
                                       repository.ChatStore._write_rows, repository.tsvector_literal)


def _init_patched(self: repository.ChatStore, *args: Any, **kwargs: Any) -> None:
    if NO_INDEX:
        kwargs["search_index"] = False
    _init(self, *args, **kwargs)


def _vector_timed(text: str) -> str:
    t = time.perf_counter()
    out = _vector(text)
    totals["vector_s"] += time.perf_counter() - t
    return out


def _rows_timed(self: repository.ChatStore, conn: Any, batch: Any) -> None:
    if _state["backend"] is None:
        _state["backend"] = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        _state["cpu0"] = _backend_cpu(_state["backend"])
    t = time.perf_counter()
    _write_rows(self, conn, batch)
    totals["rows_s"] += time.perf_counter() - t


def _write_timed(self: repository.ChatStore, batch: Any) -> None:
    t = time.perf_counter()
    _write(self, batch)
    now = time.perf_counter()
    took = now - t
    totals["commits"] += 1
    totals["messages"] += len(batch.messages)
    totals["write_s"] += took
    slowest = totals["slowest"]
    slowest.append((round(took * 1000, 2), len(batch.messages)))
    slowest.sort(reverse=True)
    del slowest[8:]
    if now - _state["last_dump"] >= 1.0:
        _state["last_dump"] = now
        if _state["backend"] is not None:
            totals["backend_cpu_s"] = _backend_cpu(_state["backend"]) - _state["cpu0"]
        OUT.write_text(json.dumps(totals))


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


repository.ChatStore.__init__ = _init_patched  # type: ignore[method-assign]
repository.ChatStore.write = _write_timed  # type: ignore[method-assign]
repository.ChatStore._write_rows = _rows_timed  # type: ignore[method-assign]
repository.tsvector_literal = _vector_timed
if NO_CLEANER:
    from chat.storage import pending_list

    pending_list.PendingListCleaner.start = lambda self: None  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv[0] = "chat"
    chat.cli.main.main()
