"""The single storage writer: a thread that commits each outbox's writes and runs its history reads, in order.

One writer gives every room a total order and lets one transaction carry everything accepted while the previous
commit was running (group commit). The database driver releases the GIL while SQLite or PostgreSQL works, so the
event loop keeps serving sockets meanwhile. Results go back to the loop through `done` and the loop's wake pipe;
only the loop thread touches chat state.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable

from chat.server.outbox import Outbox
from chat.server.state import newest_fitting
from chat.storage.repository import ChatStore

log = logging.getLogger("chat.storage")


class StorageJob:
    __slots__ = ("error", "outbox")

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.error: Exception | None = None


class StorageWorker:
    def __init__(self, store: ChatStore, notify: Callable[[], None], page_budget: int = 1 << 18) -> None:
        self.store = store
        self.notify = notify
        self.page_budget = page_budget  # bytes one /history page may take
        self.done: deque[StorageJob] = deque()
        self.done_event = threading.Event()
        self._jobs: queue.SimpleQueue[StorageJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="chat-storage", daemon=True)
        self.commits = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: StorageJob) -> None:
        self._jobs.put(job)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the jobs already submitted, then end the thread."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._execute(job)
            except Exception:  # never lose a job: the loop waits for every one it handed over
                log.exception("storage: unexpected error")
            self.done.append(job)
            job = None  # handed back: do not keep the outbox alive while waiting for the next one
            self.done_event.set()
            self.notify()

    def _execute(self, job: StorageJob) -> None:
        outbox = job.outbox
        if outbox.writes:
            try:
                self.store.write(outbox.writes)
                self.commits += 1
            except Exception as e:  # the loop tells the senders; the server carries on
                job.error = e
                self.failures += 1
                ids = [m.id for m, _room in outbox.writes.messages]
                log.error("storage: commit of %d messages%s failed (their senders are told): %s", len(ids),
                          f" (ids {ids[0]}-{ids[-1]})" if ids else "", _cause(e),
                          extra={"event": "storage_error", "messages": len(ids), "first_id": ids[0] if ids else None,
                                 "last_id": ids[-1] if ids else None})
        for request in outbox.queries:
            try:
                request.resolve_start()
                messages, more = self.store.history(
                    request.room.id, request.room.name, request.limit, before=request.before, after=request.after
                )
                # a page of long lines is cut to what the receiver's queue can take; it pages on from the cut
                if request.after is None:
                    messages, cut = newest_fitting(messages, self.page_budget)
                else:
                    kept, cut = newest_fitting(messages[::-1], self.page_budget)
                    messages = kept[::-1]
                more = more or cut
                request.messages, request.more = messages, more
            except Exception as e:
                request.error = e
                log.error("storage: history of #%s failed: %s", request.room.name, _cause(e),
                          extra={"event": "storage_error"})
            request.done = True


def _cause(e: Exception) -> str:
    """The database's own words, without the SQL and the parameters (message texts) SQLAlchemy adds."""
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"
