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
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from chat.protocol.errors import ChatError
from chat.protocol.events import ChatMessage
from chat.protocol.names import ROOMS_PAGE
from chat.server.outbox import Outbox
from chat.server.reads import (
    HistoryRequest,
    HolderRead,
    InboxRead,
    NickLookup,
    RoomEventsRead,
    RoomListRead,
    RoomLookup,
    SearchRequest,
    StorageRead,
    TargetRead,
    TargetsRead,
)
from chat.server.state import fitting_around, newest_fitting
from chat.storage.accounts import AccountStore, KnownNick
from chat.storage.cluster import (
    ClusterCommit,
    ClusterWriter,
    busiest_rooms,
    fetch_events,
    fetch_inbox,
    presence_of,
)
from chat.storage.repository import MESSAGES, ChatStore, first_id_from
from chat.storage.search import search_messages
from chat.storage.search_index import unindexed_count

log = logging.getLogger("chat.storage")

Job = TypeVar("Job")
CLAIMS_PER_QUERY = 256  # reads the reader takes at once, so that the nick claims among them share one query


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
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_after())
            except queue.Empty:
                self._idle()
                continue
            if job is None:
                break
            try:
                self._execute(job)
            except Exception:  # never lose a job: the loop waits for every one it handed over
                log.exception("storage: unexpected error")
            self.done.append(job)
            job = None  # handed back: held by nothing here once the loop may have answered it
            self._tell_done()
        self._stopped()

    def _hand_back(self, job: Job) -> None:
        self.done.append(job)
        del job  # as above: nothing here holds it once the loop is told
        self._tell_done()

    def _tell_done(self) -> None:
        self.done_event.set()
        self.notify()

    def _execute(self, job: Job) -> None:
        raise NotImplementedError

    def _idle_after(self) -> float | None:
        """Seconds without a job after which `_idle` runs (None: wait for jobs only)."""
        return None

    def _idle(self) -> None:
        """No job came for `_idle_after()` seconds (on the worker's own thread)."""

    def _stopped(self) -> None:
        """The last job is done (on the worker's own thread)."""


class StorageWorker(_Worker[StorageJob]):
    """The single writer."""

    name = "chat-storage"

    def __init__(self, store: ChatStore, notify: Callable[[], None], cluster: ClusterWriter | None = None,
                 index_when_idle: float = 0.0) -> None:
        super().__init__(notify)
        self.store = store
        self.cluster = cluster  # None: a single server, whose path this leaves as it was
        self.backfill = IdleBackfill(store) if index_when_idle > 0 else None
        self.index_when_idle = index_when_idle

    def _idle_after(self) -> float | None:
        if self.backfill is None or self.backfill.done:
            return None
        # once idle, batch after batch, each a short transaction, until a write comes (served at once, then
        # the writer must be idle again before the next batch)
        return 0.0 if self.backfill.running else self.index_when_idle

    def _idle(self) -> None:
        assert self.backfill is not None
        self.backfill.step()

    def _execute(self, job: StorageJob) -> None:
        if self.backfill is not None:
            self.backfill.running = False
        self._write(job)

    def _stopped(self) -> None:
        self.store.close()  # the connection its fast path kept

    def _write(self, job: StorageJob) -> None:
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


class IdleBackfill:
    """Indexes the messages stored before the search index existed, newest first, in the writer's idle moments: a
    batch of BATCH per transaction (a write that comes meanwhile waits one batch at most, a few milliseconds),
    with its progress logged every REPORT_EVERY seconds. `chat index` does the same from outside, and both can
    run together (chat.storage.search_index.backfill_step)."""

    BATCH = 200
    REPORT_EVERY = 10.0

    def __init__(self, store: ChatStore) -> None:
        self.store = store
        self.done = False
        self.running = False  # batches are going on: the writer has been idle since the last one
        self.indexed = 0
        self.total: int | None = None  # older messages to index, counted at the first batch
        self.started = 0.0
        self.last_report = 0.0

    def step(self) -> None:
        now = time.monotonic()
        try:
            if self.total is None:
                self.total = unindexed_count(self.store.engine)
            step = self.store.backfill_search(self.BATCH)
        except Exception as e:  # the server carries on; `chat index` can finish it
            self.done = True
            log.error("search index: indexing older messages failed, stopped (run `chat index`): %s", _cause(e),
                      extra={"event": "search_backfill_failed"})
            return
        if not self.indexed and step.indexed:
            self.started = self.last_report = now
            log.info("search index: indexing %d older messages while idle, newest first", self.total,
                     extra={"event": "search_backfill_start", "messages": self.total})
        self.indexed += step.indexed
        self.running = True
        if step.below is None:
            self.done = True
            if self.indexed:
                log.info("search index: complete, %d older messages indexed while idle in %.1f s", self.indexed,
                         time.monotonic() - self.started, extra={"event": "search_backfill_done",
                                                                 "done": self.indexed})
        elif now - self.last_report >= self.REPORT_EVERY:
            self.last_report = now
            total = max(self.total or 0, self.indexed)
            log.info("search index: %d of %d older messages indexed while idle (%.0f%%)", self.indexed, total,
                     100 * self.indexed / max(total, 1),
                     extra={"event": "search_backfill_progress", "done": self.indexed, "total": total})


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

    def _run(self) -> None:
        """As `_Worker._run`, but the nick claims waiting together are answered with one query (a crowd of
        newcomers costs a query per crowd, not per newcomer), before the other reads taken with them. Claims read
        only what the account workers commit before answering, and each member has one read in flight, so their
        order among the other reads changes no answer."""
        stopping = False
        while not stopping:
            batch, stopping = self._take()
            self._run_batch(batch)
            batch = []  # handed back: keep none of them alive while waiting for the next ones
        self._stopped()

    def _take(self) -> tuple[list[StorageRead], bool]:
        """The reads waiting (at least one, unless the worker is stopping), and whether it is."""
        first = self._jobs.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < CLAIMS_PER_QUERY:
            try:
                more = self._jobs.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return batch, True
            batch.append(more)
        return batch, False

    def _run_batch(self, batch: list[StorageRead]) -> None:
        """Run `batch`, emptying it: what is handed back is held by nothing here (a page nobody keeps)."""
        claims = [r for r in batch if isinstance(r, NickLookup) and r.purpose == "claim" and not r.cancelled]
        if len(claims) > 1:
            self._claims(claims)
            answered = {id(r) for r in claims}
            batch[:] = [r for r in batch if id(r) not in answered]
            claims.reverse()
            while claims:
                self._hand_back(claims.pop())
        batch.reverse()  # taken from the end, in the order they came
        while batch:
            try:
                self._execute(batch[-1])
            except Exception:  # never lose a read: the loop waits for every one it handed over
                log.exception("storage: unexpected error")
            self._hand_back(batch.pop())

    def _claims(self, claims: list[NickLookup]) -> None:
        """Is any of these nicks registered? One query for all of them."""
        try:
            accounts = self.accounts.accounts_of([r.key for r in claims])
        except Exception as e:
            for read in claims:
                read.error = e
            log.error("storage: a NickLookup failed: %s", _cause(e), extra={"event": "storage_error"})
            return
        for read in claims:
            account = accounts.get(read.key)
            if account is not None:
                read.found = KnownNick(account.nick, account, account.last_seen or 0.0)  # a claim needs no more

    def _execute(self, read: StorageRead) -> None:
        if read.cancelled:
            return
        try:
            match read:
                case HistoryRequest():
                    self._history(read)
                case RoomLookup():
                    read.found = self.store.find_room(read.key, read.recent)
                    read.read = True
                case SearchRequest():
                    self._search(read)
                case RoomEventsRead():
                    read.events = fetch_events(self.store.engine, read.room_id, read.after)
                case InboxRead():
                    assert self.store.node is not None
                    read.entries = fetch_inbox(self.store.engine, self.store.node, read.after)
                case HolderRead():
                    holder = presence_of(self.store.engine, read.key)
                    read.nick = holder[1] if holder is not None and holder[0] != read.node else None
                case TargetRead():
                    holder = presence_of(self.store.engine, read.key)
                    if holder is not None and holder[0] != read.node:
                        known = self.accounts.known(read.key)
                        read.nick, read.account = holder[1], known.account if known is not None else None
                case TargetsRead():
                    read.run(self.store.engine)
                case RoomListRead():
                    read.rooms, read.total = busiest_rooms(self.store.engine, ROOMS_PAGE, read.seen, read.hidden,
                                                           read.every)
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
        if request.before_ms is not None:
            request.before = first_id_from(self.store.engine, MESSAGES.c.room_id == room_id, request.before_ms)
        if request.after_ms is not None:
            request.after = first_id_from(self.store.engine, MESSAGES.c.room_id == room_id, request.after_ms + 1) - 1
        if request.around is not None:
            request.messages, request.more, request.newer = self._around(room_id, request)
            return
        messages, more = self.store.history(room_id, request.room_name, request.limit, before=request.before,
                                            after=request.after)
        # a page of long lines is cut to what the receiver's queue can take; it pages on from the cut
        if request.after is None:
            messages, cut = newest_fitting(messages, self.page_budget)
        else:
            kept, cut = newest_fitting(messages[::-1], self.page_budget)
            messages = kept[::-1]
        request.messages, request.more = messages, more or cut

    def _around(self, room_id: int, request: HistoryRequest) -> tuple[list[ChatMessage], bool, bool]:
        """The message `around` with older ones before it (half the page, it included), then newer ones after
        it: a page that shows a search result in its context, cut like any page when its lines are long."""
        assert request.around is not None
        newer_count = request.limit // 2
        older, more = self.store.history(room_id, request.room_name, request.limit - newer_count,
                                         before=request.around + 1)
        newer: list[ChatMessage] = []
        newer_more = False
        if newer_count:
            newer, newer_more = self.store.history(room_id, request.room_name, newer_count, after=request.around)
        shown, older_cut, newer_cut = fitting_around(older, newer, self.page_budget)
        return shown, more or older_cut, newer_more or newer_cut


def _cause(e: Exception) -> str:
    """The database's own words, without the SQL and the parameters (message texts) SQLAlchemy adds."""
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"
