"""The search index: how each database keeps it, how a message's terms go in, and how older messages are filled in.

Both databases index the terms of chat.search.terms, never their own idea of a word, so both find the same
messages for the same query:

* SQLite: `messages_fts`, an FTS5 table with no content of its own (`content=''`): the terms of each message
  under its id (the rowid), split by the `ascii` tokenizer, which keeps every non-ASCII character and splits
  ASCII on anything but letters and digits. An ASCII message goes in as it is (that tokenizer finds exactly its
  terms); any other goes in as its terms joined by spaces. `columnsize=0`: no per-message sizes, which only
  bm25 ranking would read; results come newest first.
* PostgreSQL: `messages.search_vector`, a `tsvector` built here with each term at its position (never by
  PostgreSQL's parser, which splits by the database's locale), under a partial GIN index (migration 0007; until
  then a table of its own, `message_search`, which cost a second row per message and a join per search).

The store's writer adds each batch's terms in the batch's own transaction (chat.storage.repository; on PostgreSQL in
the messages' own INSERT), so a message is found the moment it is stored, and never before. That beat triggers by
measurement (benchmarks/search_bench.py, docs/PERFORMANCE.md): an FTS5 insert in a trigger fires once per row inside
the row's statement, and cost three times as much per message as the writer's one executemany. Messages stored
before the index existed are indexed by `backfill()`, newest first, a batch per transaction: `chat index` runs it
beside a running server, and `ChatStore.backfill_search()` is the same step for the server's storage thread to take
when it is idle.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    Text,
    bindparam,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

from chat.search.terms import ascii_terms, is_verbatim, terms
from chat.storage.models import Message, SearchIndexState

log = logging.getLogger("chat.storage")

FTS_TABLE = "messages_fts"
# The tables the migrations make for the index. They are not SQLAlchemy models (an FTS5 table and its shadow
# tables cannot be), so `alembic check` leaves them out (migrations/env.py); so is PostgreSQL's column for it.
SEARCH_TABLES = frozenset({FTS_TABLE, *(f"{FTS_TABLE}_{shadow}" for shadow in ("data", "idx", "content", "docsize",
                                                                                "config"))})
VECTOR_COLUMN = "search_vector"  # messages.search_vector, PostgreSQL only (migration 0007)
VECTOR_INDEX = "ix_messages_search_vector"
FTS_INSERT = "INSERT INTO messages_fts (rowid, terms) VALUES (?, ?)"
PG_POSITION_MAX = 16383  # PostgreSQL keeps positions up to this; later terms share it

_index_metadata = MetaData()
FTS = Table(FTS_TABLE, _index_metadata, Column("rowid", BigInteger), Column("terms", Text))
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
# PostgreSQL's messages as the writer and the backfill see them: the model's columns and the vector, which is no
# model's (SQLite has no such column). Searches name the column through `VECTOR`, on the model's table.
PG_MESSAGES = Table("messages", _index_metadata,
                    *(Column(c.name, c.type, primary_key=c.primary_key) for c in MESSAGES.columns),
                    Column(VECTOR_COLUMN, TSVECTOR))
VECTOR: ColumnElement[Any] = literal_column(f"messages.{VECTOR_COLUMN}", TSVECTOR)
STATE: Table = SearchIndexState.__table__  # type: ignore[assignment]
STATE_ID = 1


def fts_document(text: str) -> str:
    """What the FTS5 table is given for a message."""
    return text if is_verbatim(text) else " ".join(terms(text))


def tsvector_literal(text: str) -> str:
    """A message's terms as a tsvector in PostgreSQL's input syntax ('term':position ...), bound as a parameter."""
    if text.isascii():
        found = ascii_terms(text)
        if len(found) <= len(_ASCII_POSITIONS):
            # ASCII terms are [a-z0-9]+: nothing to quote, and each term's position and the next term's opening
            # quote come ready-made: a quarter less time than formatting each term (docs/PERFORMANCE.md)
            return "'" + "".join(map(operator.add, found, _ASCII_POSITIONS))[:-2] if found else ""
    else:
        found = terms(text)
    return " ".join(f"'{quote_lexeme(t)}':{min(i, PG_POSITION_MAX)}" for i, t in enumerate(found, 1))


# "':1 '", "':2 '", ...: what follows the n-th term of an ASCII message in its tsvector literal (the last one's
# trailing " '" is cut). A message of up to 4 KiB holds at most 2,048 terms; a longer one takes the general path.
_ASCII_POSITIONS = tuple(f"':{i} '" for i in range(1, 2049))


def quote_lexeme(term: str) -> str:
    """A term inside '...' of tsvector or tsquery input. Terms hold no quote or backslash (they are letters,
    digits, marks and symbols), but the quoting does not depend on that."""
    return term.replace("\\", "\\\\").replace("'", "''")


def index_messages(conn: Connection, rows: Sequence[tuple[int, str]]) -> None:
    """Add (message id, text) pairs of stored messages to the index, in the caller's transaction. (The writer
    does not call this on PostgreSQL: there a new message's INSERT carries its vector, see ChatStore.)"""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(FTS_INSERT, [(message_id, fts_document(text)) for message_id, text in rows])
    else:
        conn.execute(update(PG_MESSAGES).where(PG_MESSAGES.c.id == bindparam("message_id"))
                     .values({VECTOR_COLUMN: bindparam("vector")}),
                     [{"message_id": message_id, "vector": tsvector_literal(text)} for message_id, text in rows])


# ---------------------------------------------------------------------------------------------- backfill


@dataclass(slots=True)
class BackfillStep:
    indexed: int  # messages indexed by this step
    below: int | None  # messages with ids below this are still to do; None: the index is complete


def unindexed_below(conn: Connection) -> int | None:
    """Messages with ids below this are not in the index yet (None: every message is)."""
    return conn.execute(select(STATE.c.backfill_below).where(STATE.c.id == STATE_ID)).scalar()


def unindexed_count(engine: Engine) -> int:
    """How many messages the index does not hold yet (a count of the ids below `unindexed_below`)."""
    with engine.connect() as conn:
        below = unindexed_below(conn)
        if below is None:
            return 0
        return conn.execute(select(func.count()).select_from(MESSAGES).where(MESSAGES.c.id < below)).scalar() or 0


def backfill_step(engine: Engine, batch: int = 1000) -> BackfillStep:
    """Index the newest `batch` messages not indexed yet, in one transaction with the progress that records it:
    a crash loses nothing and indexes nothing twice. Safe beside a running server and beside another backfill
    (SQLite: the write lock is taken first; PostgreSQL: the state row is locked first)."""
    writer = engine.execution_options(sqlite_begin="IMMEDIATE")
    with writer.begin() as conn:
        below = conn.execute(
            select(STATE.c.backfill_below).where(STATE.c.id == STATE_ID).with_for_update()
        ).scalar()
        if below is None:
            return BackfillStep(0, None)
        rows = conn.execute(
            select(MESSAGES.c.id, MESSAGES.c.text).where(MESSAGES.c.id < below)
            .order_by(MESSAGES.c.id.desc()).limit(batch)
        ).all()
        next_below = rows[-1].id if len(rows) == batch else None
        # oldest first within the batch: FTS5 flushes its pending terms whenever a rowid goes down
        index_messages(conn, [(row.id, row.text) for row in reversed(rows)])
        conn.execute(update(STATE).where(STATE.c.id == STATE_ID).values(backfill_below=next_below))
    return BackfillStep(len(rows), next_below)


def backfill(
    engine: Engine, *, batch: int = 1000, pause: float = 0.0, report_every: float = 5.0,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Index every message stored before the index existed, newest first; log progress every `report_every`
    seconds (and call `progress(done, total)` after each batch). `pause` seconds between batches leave the
    database to a running server's writer. Returns how many messages were indexed."""
    total = unindexed_count(engine)
    if not total:
        with engine.connect() as conn:
            if unindexed_below(conn) is None:
                return 0
    log.info("search index: indexing %d older messages, newest first", total,
             extra={"event": "search_backfill_start", "messages": total})
    done, started, last_report = 0, time.monotonic(), time.monotonic()
    while True:
        step = backfill_step(engine, batch)
        done += step.indexed
        if progress is not None:
            progress(done, total)
        now = time.monotonic()
        if step.below is None:
            break
        if now - last_report >= report_every:
            last_report = now
            log.info("search index: %d of %d older messages indexed (%.0f%%), %.0f/s", done, total,
                     100 * done / max(total, 1), done / max(now - started, 1e-9),
                     extra={"event": "search_backfill_progress", "done": done, "total": total})
        if pause:
            time.sleep(pause)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # fresh statistics, or the planner guesses the GIN index is not worth it
            conn.execute(text("ANALYZE messages"))
    log.info("search index: complete, %d older messages indexed in %.1f s", done, time.monotonic() - started,
             extra={"event": "search_backfill_done", "done": done})
    return done

