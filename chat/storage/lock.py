"""One server per database.

Two servers on one database would hand out the same message ids and split the rooms' order, so a second
`chat serve` refuses to start. SQLite: an exclusive `flock` on `<db file>.lock`. PostgreSQL: a session-level
advisory lock held on a connection of its own. Both are released by the operating system or the database the
moment the process dies, `kill -9` included, so a crash never leaves a stale lock behind.

Clustered nodes (`chat serve --cluster`) take the same advisory lock shared instead: any number of them serve one
database together, and a single server (which wants it exclusive) still cannot start beside them, nor they
beside it.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from sqlalchemy import Engine, text

from chat.storage.database import sqlite_path

ADVISORY_LOCK_KEY = 0x63686174  # "chat"
_TAKE_EXCLUSIVE = text("SELECT pg_try_advisory_lock(:key)")  # a single server's
_TAKE_SHARED = text("SELECT pg_try_advisory_lock_shared(:key)")  # clustered nodes'


class DatabaseInUse(Exception):
    """Another server holds this database."""


class ServerLock:
    def __init__(self, engine: Engine, *, shared: bool = False) -> None:
        self.engine = engine
        self.shared = shared  # a clustered node's: PostgreSQL only
        self._fd: int | None = None
        self._connection: Any = None

    def acquire(self) -> None:
        path = sqlite_path(str(self.engine.url))
        if path is not None:
            lock_path = f"{path}.lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DatabaseInUse(f"another chat server is using {path} (it holds {lock_path})") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
        elif self.engine.dialect.name == "postgresql":
            connection = self.engine.connect()
            take = _TAKE_SHARED if self.shared else _TAKE_EXCLUSIVE
            got = connection.execute(take, {"key": ADVISORY_LOCK_KEY}).scalar()
            connection.commit()
            if not got:
                connection.close()
                whom = "a chat server not in a cluster" if self.shared else "another chat server"
                hint = "" if self.shared else " (clustered nodes share a database only with --cluster)"
                raise DatabaseInUse(f"{whom} is using the database {self.engine.url.database}{hint}")
            self._connection = connection

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        if self._connection is not None:
            # closed for real, not handed back to the pool: a pooled session keeps its advisory lock, and a thread
            # still stopping could check that connection out again (the next server then finds the lock held)
            self._connection.invalidate()
            self._connection.close()
            self._connection = None
