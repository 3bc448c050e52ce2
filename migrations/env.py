"""Alembic environment.

`chat serve` runs the migrations itself and hands its connection over in `config.attributes["connection"]`.
From the command line, in the project folder: `alembic upgrade head` (database from $CHAT_DB, else
chat.sqlite), or `alembic -x db=URL upgrade head` (URL or SQLite file path).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from chat.storage.database import make_engine, resolve_url
from chat.storage.models import Base
from chat.storage.search_index import SEARCH_TABLES, VECTOR_COLUMN, VECTOR_INDEX

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    x = context.get_x_argument(as_dictionary=True)
    url = x.get("db") or config.get_main_option("sqlalchemy.url") or os.environ.get("CHAT_DB") or "chat.sqlite"
    return resolve_url(url)


def _modelled(name: str | None, type_: str, parent_names: object) -> bool:
    """The search index's tables are not models (an FTS5 table cannot be one), nor is PostgreSQL's column for it
    in `messages` with its index: autogenerate and `alembic check` leave them to chat.storage.search_index and
    its tests."""
    return not ((type_ == "table" and name in SEARCH_TABLES) or (type_ == "column" and name == VECTOR_COLUMN)
                or (type_ == "index" and name == VECTOR_INDEX))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
        compare_type=True,
        include_name=_modelled,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, include_name=_modelled)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
