"""The schema, as SQLAlchemy 2.x typed models. Alembic's migrations must match it (a test runs `alembic check`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chat.protocol.names import NICK_MAX, ROOM_MAX

# Named constraints: Alembic's batch mode on SQLite cannot alter constraints that have no name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# On SQLite only INTEGER PRIMARY KEY is the rowid; BIGINT would make a second, slower key.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """Every nickname that has been used, and when."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nick: Mapped[str] = mapped_column(String(NICK_MAX))  # as last written
    nick_key: Mapped[str] = mapped_column(String(NICK_MAX), unique=True)  # lower case: nicks ignore case
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(ROOM_MAX))
    name_key: Mapped[str] = mapped_column(String(ROOM_MAX), unique=True)
    topic: Mapped[str | None] = mapped_column(Text)
    topic_set_by: Mapped[str | None] = mapped_column(String(NICK_MAX))
    topic_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """Room messages, /me actions and private messages.

    `id` is given by the server, in the order it accepted messages, so it is also the order of each room;
    ids grow but may skip (a batch that failed to commit leaves a gap). `sender` is the nick as it was when
    the message was sent.
    """

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_room_id_id", "room_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # message | action | private
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))  # None for private messages
    sender: Mapped[str] = mapped_column(String(NICK_MAX))
    recipient: Mapped[str | None] = mapped_column(String(NICK_MAX))  # private messages only
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SearchIndexState(Base):
    """One row: how far the search index has come with the messages stored before it existed.

    The index itself (SQLite's FTS5 table, PostgreSQL's `message_search`) is engine-specific and described in
    chat.storage.search_index. Messages written since the index exists are indexed in the same transaction;
    older ones are filled in newest first, in batches, each batch moving `backfill_below` down with it.
    """

    __tablename__ = "search_index_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backfill_below: Mapped[int | None] = mapped_column(BigId)  # ids below this are not indexed yet; None: all are
