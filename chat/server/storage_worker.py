"""The storage threads: one writer that commits each outbox's writes in order, and one reader for the reads.

One writer gives every room a total order and lets one transaction carry everything accepted while the previous
commit was running (group commit). Reads (history pages, rooms coming back into memory) run on a thread of
their own, so a burst of large pages never holds a commit back; the loop hands a read over only once the writes
before it are committed. The database driver releases the GIL while SQLite or PostgreSQL works, so the event
loop keeps serving sockets meanwhile. Results go back to the loop through `done` deques and the loop's wake pipe;
only the loop thread touches chat state.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from chat.protocol.errors import ChatError
from chat.server.outbox import Outbox
from chat.server.reads import (
    HistoryRequest,
    PrivateMessageRead,
    RoomEventsRead,
    RoomLookup,
    SearchRequest,
    StorageRead,
)
from chat.server.state import newest_fitting
from chat.storage.accounts import AccountStore
from chat.storage.cluster import ClusterCommit, ClusterWriter, fetch_events, fetch_private
from chat.storage.repository import ChatStore
from chat.storage.search import search_messages

log = logging.getLogger("chat.storage")

Job = TypeVar("Job")


class StorageJob:
    __slots__ = ("cluster", "error", "outbox")

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.error: Exception | None = None
        self.cluster: ClusterCommit | None = None  # a clustered node's: real ids, event numbers, gaps


class _Worker(Generic[Job]):
    """A thread taking jobs from a queue and handing each back, done, through `done` and `notify`."""

    name = "chat-storage"

    def __init__(self, notify: Callable[[], None]) -> None:
        self.notify = notify
        self.done: deque[Job] = deque()
        self.done_event = threading.Event()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
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
            job = None  # handed back: do not keep it alive while waiting for the next one
            self.done_event.set()
            self.notify()
        self._stopped()

    def _execute(self, job: Job) -> None:
        raise NotImplementedError

    def _stopped(self) -> None:
        """The last job is done (on the worker's own thread)."""


class StorageWorker(_Worker[StorageJob]):
    """The single writer."""

    name = "chat-storage"

    def __init__(self, store: ChatStore, notify: Callable[[], None], cluster: ClusterWriter | None = None) -> None:
        super().__init__(notify)
        self.store = store
        self.cluster = cluster  # None: a single server, whose path this leaves as it was

    def _stopped(self) -> None:
        self.store.close()  # the connection its fast path kept

    def _execute(self, job: StorageJob) -> None:
        outbox = job.outbox
        if not outbox.writes:
            return
        try:
            if self.cluster is None:
                self.store.write(outbox.writes)
            else:
                try:
                    job.cluster = self.store.write_clustered(outbox.writes, self.cluster)
                finally:  # (failed too: its senders are told, by the ids their messages now have)
                    renumbered = self.cluster.pending.message_ids
                    if renumbered:  # the outbox is the writer's until handed back: senders go by the new ids
                        outbox.senders = {renumbered.get(i, i): m for i, m in outbox.senders.items()}
        except Exception as e:  # the loop tells the senders; the server carries on
            job.error = e
            ids = [m.id for m, _room in outbox.writes.messages]
            log.error("storage: commit of %d messages%s failed (their senders are told): %s", len(ids),
                      f" (ids {ids[0]}-{ids[-1]})" if ids else "", _cause(e),
                      extra={"event": "storage_error", "messages": len(ids), "first_id": ids[0] if ids else None,
                             "last_id": ids[-1] if ids else None})


class StorageReader(_Worker[StorageRead]):
    """Runs reads, one at a time, each after the writes accepted before it are committed. A read whose members
    have all gone is skipped (`cancelled` is read across threads: a stale answer only means a wasted read)."""

    name = "chat-reader"

    def __init__(self, store: ChatStore, notify: Callable[[], None], page_budget: int,
                 search_budget: float = 1.0) -> None:
        super().__init__(notify)
        self.store = store
        self.accounts = AccountStore(store.engine)
        self.page_budget = page_budget  # bytes one /history page may take
        self.search_budget = search_budget  # seconds one /search page may take

    def _execute(self, read: StorageRead) -> None:
        if read.cancelled:
            return
        try:
            match read:
                case HistoryRequest():
                    self._history(read)
                case RoomLookup():
                    read.found = self.store.find_room(read.key, read.recent)
                case SearchRequest():
                    self._search(read)
                case RoomEventsRead():
                    read.events = fetch_events(self.store.engine, read.room_id, read.after)
                case PrivateMessageRead():
                    read.message = fetch_private(self.store.engine, read.message_id)
                case _:  # accounts: private history, offline messages, what is known of a nick
                    read.run(self.accounts, self.page_budget)
        except Exception as e:
            read.error = e
            log.error("storage: a %s failed: %s", type(read).__name__, _cause(e), extra={"event": "storage_error"})

    def _search(self, request: SearchRequest) -> None:
        try:
            page = search_messages(self.store.engine, request.query, request.scope, limit=request.limit,
                                   before=request.before, budget=self.search_budget)
        except ChatError as e:  # past its time budget: the searcher is told to narrow it
            request.refusal = e
            return
        messages, cut = newest_fitting(page.messages[::-1], self.page_budget)  # never more than a page may take
        request.messages = messages[::-1]
        request.more = page.more or cut
        request.indexing = page.unindexed_below is not None

    def _history(self, request: HistoryRequest) -> None:
        room_id = request.room_id
        if room_id is None:  # not in memory: its settings come too (may this member read it?)
            request.room = self.store.find_room(request.room_key, 0)
            if request.room is None:
                request.found = False
                return
            room_id = request.room.room.id
        messages, more = self.store.history(room_id, request.room_name, request.limit, before=request.before,
                                            after=request.after)
        # a page of long lines is cut to what the receiver's queue can take; it pages on from the cut
        if request.after is None:
            messages, cut = newest_fitting(messages, self.page_budget)
        else:
            kept, cut = newest_fitting(messages[::-1], self.page_budget)
            messages = kept[::-1]
        request.messages, request.more = messages, more or cut


def _cause(e: Exception) -> str:
    """The database's own words, without the SQL and the parameters (message texts) SQLAlchemy adds."""
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"
