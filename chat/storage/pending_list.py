"""PostgreSQL: the search index's pending list, emptied off the writer's commit path.

The GIN index over `messages.search_vector` takes new entries into a pending list (`fastupdate`, the default: an
insert straight into the index cost a PostgreSQL writer 25 µs more a message, docs/PERFORMANCE.md). Whichever
INSERT takes that list past `gin_pending_list_limit` (4 MB) then moves the whole list into the index itself,
inside its own statement: on the server's single writer, that commit, and every message waiting for it, stalls
for the length of the move (the slowest commits of a burst, 2-3 times a median one). `PendingListCleaner` calls
`gin_clean_pending_list()` a few times a second on a connection of its own, so the list is moved in small pieces
by another PostgreSQL backend, beside the writer, and the writer's INSERTs find it short. It takes no lock an
INSERT waits for: an INSERT that finds a move under way skips its own. Searches gain too: each GIN scan reads the
whole pending list. The driver releases the GIL while PostgreSQL works.

A cleaning that fails is tried again at the next turn and logged once per cause; if the server's role may not
clean the index (only its owner may), the writer's INSERTs go on doing it, as before, and this stops.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from chat.storage.periodic import PeriodicThread
from chat.storage.search_index import VECTOR_INDEX

log = logging.getLogger("chat.storage")

CLEAN_INTERVAL_S = 0.25  # a burst of chat fills the 4 MB list in 1-2 s: this keeps it well below
IDLE_INTERVAL_S = 1.0  # after a cleaning that found nothing to move (nobody is writing)
_CLEAN = text("SELECT gin_clean_pending_list(CAST(:index AS regclass))").bindparams(index=VECTOR_INDEX)
_INSUFFICIENT_PRIVILEGE = "42501"


class PendingListCleaner(PeriodicThread):
    def __init__(self, engine: Engine, interval: float = CLEAN_INTERVAL_S,
                 idle_interval: float = IDLE_INTERVAL_S) -> None:
        super().__init__("chat-gin-clean", interval)
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.idle_interval = max(interval, idle_interval)
        self.cleanings = 0  # done so far
        self.pages = 0  # pending-list pages they moved into the index

    def _run(self) -> None:
        last_problem = ""
        while not self._stop.wait(self.interval):
            try:
                with self.engine.connect() as conn:
                    while not self._stop.is_set():
                        moved = conn.execute(_CLEAN).scalar() or 0
                        self.pages += moved
                        self.cleanings += 1
                        last_problem = ""
                        if self._stop.wait(self.interval if moved else self.idle_interval):
                            return
            except DBAPIError as e:
                if getattr(e.orig, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
                    log.info("storage: this role may not clean the search index's pending list (its owner "
                             "may): the writer's INSERTs do it, as PostgreSQL does by default")
                    return
                last_problem = _report(e, last_problem)
            except SQLAlchemyError as e:
                last_problem = _report(e, last_problem)


def _report(e: SQLAlchemyError, last: str) -> str:
    cause = getattr(e, "orig", None) or e
    problem = " ".join(str(cause).split())
    if problem != last:
        log.warning("storage: cleaning the search index's pending list failed (tried again): %s", problem)
    return problem
