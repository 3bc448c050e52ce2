"""Engines and schema upgrades: SQLite pragmas, PostgreSQL by URL, Alembic run from code.

A database that cannot be used (a bad URL, a folder, a file that is not SQLite, a server that does not answer, a
schema written by a newer chat) is a `DatabaseUnusable` with one line that says which and why; the commands show
that line and exit 1 instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 10  # an unreachable server fails the start in this long, not in TCP's minutes


class DatabaseUnusable(Exception):
    """The database cannot be used at all; the message is one line for people, naming it and saying why."""


class SchemaTooNew(DatabaseUnusable):
    """A newer chat migrated this database: its migrations may have changed anything this chat reads or writes."""


@contextmanager
def database_errors(db: str) -> Iterator[None]:
    """Inside this block, a failure to reach or read the database `db` becomes one `DatabaseUnusable` line."""
    try:
        yield
    except SQLAlchemyError as e:
        raise DatabaseUnusable(f"cannot use the database {shown_url(db)}: {_reason(e)}") from e
    except ImportError as e:  # the URL names a driver that is not installed
        raise DatabaseUnusable(f"cannot use the database {shown_url(db)}: its driver is not installed ({e}); "
                               "for PostgreSQL: pip install 'chat-server[postgres]'") from e


def _reason(e: SQLAlchemyError) -> str:
    # the driver's own words (sqlite3, psycopg), on one line; SQLAlchemy's wrapper adds SQL and a web link
    cause = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
    words = str(cause.args[0]) if cause.args else type(cause).__name__
    return " ".join(words.split())


def shown_url(db: str) -> str:
    """`db` as the database's URL, its password hidden: for messages and logs."""
    try:
        return make_url(resolve_url(db)).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return db


def resolve_url(db: str) -> str:
    """`--db` takes an SQLAlchemy URL or a plain file path, which means an SQLite file."""
    if "://" in db:
        return db
    return "sqlite:///" + str(Path(db).expanduser().absolute())


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def make_engine(db: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, checkpoint_pages: int | None = None,
                **kwargs: Any) -> Engine:
    """An engine for `db` (nothing is connected yet). Raises DatabaseUnusable for a URL that cannot be one.
    `checkpoint_pages`: SQLite's `wal_autocheckpoint` for its connections (the server checkpoints in the
    background: chat.storage.checkpoint)."""
    url = resolve_url(db)
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError) as e:  # ValueError: a port that is not a number
        raise DatabaseUnusable(f"{db!r} is not a database URL ({e}); give a file path, or a URL such as "
                               "postgresql+psycopg://user@host/dbname") from None
    path = sqlite_path(url)
    if path is not None and path.is_dir():
        raise DatabaseUnusable(f"cannot use the database {path}: it is a folder; give a file path")
    with database_errors(db):
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(url, **kwargs)
            _tune_sqlite(engine, busy_timeout_ms, checkpoint_pages)
            return engine
        if parsed.get_backend_name() == "postgresql":
            connect_args = dict(kwargs.pop("connect_args", {}))
            if "options" not in parsed.query:
                # the busy timeout bounds lock waits here too: a table another program keeps locked fails the
                # batch (its senders are told) instead of holding every delivery back as long as that program likes
                connect_args.setdefault("options", f"-c lock_timeout={int(busy_timeout_ms)}")
            if "connect_timeout" not in parsed.query:
                connect_args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
            kwargs["connect_args"] = connect_args
        return create_engine(url, pool_pre_ping=True, **kwargs)


def _tune_sqlite(engine: Engine, busy_timeout_ms: int, checkpoint_pages: int | None) -> None:
    # WAL lets `chat history` read while the server writes. synchronous=NORMAL skips the fsync at each commit:
    # a crash of the process loses nothing committed; a power cut may lose the last commits (not corrupt the file).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling would open transactions behind our back; SQLAlchemy emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if checkpoint_pages is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        cursor.close()

    # The server's writer asks for BEGIN IMMEDIATE: it takes the write lock up front, waiting up to the busy
    # timeout, instead of failing half-way through a batch when a reader's snapshot goes stale.
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def migrations_dir() -> Path:
    import chat.migrations

    return Path(chat.migrations.__file__).parent


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration, on this engine's database. Raises SchemaTooNew,
    touching nothing, when a newer chat migrated it."""
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        check_schema(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def check_schema(connection: Connection) -> None:
    """Raise SchemaTooNew if the database's schema revision is one this chat's migrations do not know (a newer
    chat wrote it). An older revision is fine: `upgrade()` brings it up to date, and it holds what we read."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(connection).get_current_heads()
    script = ScriptDirectory.from_config(alembic_config())
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = [revision for revision in current if revision not in known]
    if unknown:
        url = connection.engine.url.render_as_string(hide_password=True)
        raise SchemaTooNew(f"the database {url} was migrated by a newer chat (schema revision {', '.join(unknown)}; "
                           f"this one knows up to {script.get_current_head()}): run a chat at least that new on it")
