"""Many rows in few statements, for the SQLite writer's hot path.

`executemany` runs its statement once per row, and the sqlite3 module lets go of the GIL around every step and
takes it back after: per row, a GIL hand-off and SQLite's own mutexes. Under a burst, perf put the writer thread's
mutex lock/unlock calls at an eighth of its CPU, and every hand-off lets the event loop in before the writer may
go on. One `INSERT ... VALUES (...), (...), ...` steps once for all its rows (measured with benchmarks/
cpu_per_message.py and docs/PERFORMANCE.md, "Round three").

Chunks are powers of two, so a handful of statement texts serve every batch size; each is compiled by SQLite once
and kept in the driver's statement cache (128 statements by default; this makes at most 2 x 9).

Into the FTS5 index, the statement alone is no cheaper this way (a virtual table takes its rows one at a time),
but the commit after it is: measured together, a little less CPU per message than executemany.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

CHUNK_MAX = 256  # rows per statement at most (and never more bound variables than the library allows)


class MultiRowInsert:
    """An INSERT of `columns` values per row, from its one-row form `INSERT INTO t (a, b) VALUES (?, ?)`."""

    __slots__ = ("_columns", "_head", "_max_rows", "_one", "_texts")

    def __init__(self, one_row_sql: str, columns: int) -> None:
        head, sep, one = one_row_sql.rpartition(" VALUES ")
        one = one.strip()
        if not sep or one.count("?") != columns:
            raise ValueError(f"not a one-row INSERT of {columns} columns: {one_row_sql!r}")
        self._head, self._one, self._columns = head, one, columns
        self._max_rows = 0  # known at the first run: the connection's limit of bound variables
        self._texts: dict[int, str] = {}

    def run(self, db: sqlite3.Connection, flat: Sequence[object]) -> None:
        """Insert the rows whose values follow one another in `flat` (row after row), in that order."""
        columns = self._columns
        if not self._max_rows:
            variables = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            size = CHUNK_MAX
            while size > 1 and size * columns > variables:
                size >>= 1
            self._max_rows = size
        left, at = len(flat) // columns, 0
        while left:
            size = min(self._max_rows, 1 << (left.bit_length() - 1))  # the largest power of two that fits
            end = at + size * columns
            db.execute(self._text(size), flat[at:end] if at or end < len(flat) else flat)
            at, left = end, left - size

    def _text(self, rows: int) -> str:
        text = self._texts.get(rows)
        if text is None:
            text = self._texts[rows] = f"{self._head} VALUES {', '.join([self._one] * rows)}"
        return text
