"""A storage thread of its own that does one thing every so often, off the writer's commit path, until stopped.

The background WAL checkpoint (SQLite, chat.storage.checkpoint) and the search index's pending-list cleaner
(PostgreSQL, chat.storage.pending_list) are such threads: each says only what its turn does (`_run`).
"""

from __future__ import annotations

import threading


class PeriodicThread:
    def __init__(self, name: str, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
