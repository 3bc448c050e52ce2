"""The schema, as SQLAlchemy 2.x typed models. Alembic's migrations must match it (a test runs `alembic check`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chat.protocol.masks import MASK_MAX
from chat.protocol.names import KEY_MAX, NICK_MAX, ROOM_MAX

HASH_MAX = 255  # an argon2id hash in its PHC string form is about 100 characters
ROLE_MAX = 8
CONVERSATION_MAX = 24  # two 32-bit account ids and a colon

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
    """Every nickname that has been used, and when; those with a password are accounts (registered nicknames).

    Ids are never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), so what names an account by id
    (private messages, room owners, ops and bans) can never come to mean whoever registers a deleted account's
    nickname later. Those references have no foreign key on purpose: `chat users delete` may run while a server
    writes, and a batch of messages must not fail because it names an account deleted a moment before.
    """

    __tablename__ = "users"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nick: Mapped[str] = mapped_column(String(NICK_MAX))  # as last written
    nick_key: Mapped[str] = mapped_column(String(NICK_MAX), unique=True)  # lower case: nicks ignore case
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    password_hash: Mapped[str | None] = mapped_column(String(HASH_MAX))  # argon2id; None: a guest's nick
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    admin: Mapped[bool] = mapped_column(Boolean, server_default=false())  # may moderate every room


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(ROOM_MAX))
    name_key: Mapped[str] = mapped_column(String(ROOM_MAX), unique=True)
    topic: Mapped[str | None] = mapped_column(Text)
    topic_set_by: Mapped[str | None] = mapped_column(String(NICK_MAX))
    topic_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # its owner: the first logged-in user to join it when it was new (None: a room a guest made, or an old one)
    owner_id: Mapped[int | None] = mapped_column(Integer)  # an account id (no foreign key: see User)
    owner_nick: Mapped[str | None] = mapped_column(String(NICK_MAX))
    invite_only: Mapped[bool] = mapped_column(Boolean, server_default=false())  # +i
    moderated: Mapped[bool] = mapped_column(Boolean, server_default=false())  # +m: only ops and voiced speak
    topic_ops_only: Mapped[bool] = mapped_column(Boolean, server_default=false())  # +t
    join_key: Mapped[str | None] = mapped_column(String(KEY_MAX))  # +k: a password to join (shared with members)
    member_limit: Mapped[int | None] = mapped_column(Integer)  # +l: at most this many members (None: no limit)
    secret: Mapped[bool] = mapped_column(Boolean, server_default=false())  # +s: hidden from outsiders
    no_external: Mapped[bool] = mapped_column(Boolean, server_default=true())  # +n: only members send to it
    # the last room event's number (room_events.seq): only clustered nodes write it, under this row's lock
    seq: Mapped[int] = mapped_column(BigInteger, server_default="0")


class RoomRole(Base):
    """Who is what in a room: `op`, `voice` (accounts only), `ban` and `invite` (an account, or a guest's nick),
    `invex` (+I) and `except` (+e) (a nick); `ban`, `invex` and `except` may also be a mask (`nick` the mask as
    kept, `nick_key` in lower case: chat.protocol.masks)."""

    __tablename__ = "room_roles"
    __table_args__ = (UniqueConstraint("room_id", "role", "nick_key", name="uq_room_roles_room_id_role_nick_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    role: Mapped[str] = mapped_column(String(ROLE_MAX))
    nick: Mapped[str] = mapped_column(String(MASK_MAX))
    nick_key: Mapped[str] = mapped_column(String(MASK_MAX))
    account_id: Mapped[int | None] = mapped_column(Integer)  # None: a guest's nickname (no foreign key: see User)
    set_by: Mapped[str] = mapped_column(String(NICK_MAX))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """Room messages, /me actions and private messages.

    `id` is given by the server, in the order it accepted messages, so it is also the order of each room;
    ids grow but may skip (a batch that failed to commit leaves a gap). `sender` is the nick as it was when
    the message was sent.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_room_id_id", "room_id", "id"),
        Index("ix_messages_conversation_id", "conversation", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # message | action | private
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))  # None for private messages
    sender: Mapped[str] = mapped_column(String(NICK_MAX))
    recipient: Mapped[str | None] = mapped_column(String(NICK_MAX))  # private messages only
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # private messages between logged-in users: the accounts (no foreign keys: see User), and the conversation
    # they belong to ("12:57", the two account ids in order), which /history @NICK pages by
    sender_account_id: Mapped[int | None] = mapped_column(Integer)
    recipient_account_id: Mapped[int | None] = mapped_column(Integer)
    conversation: Mapped[str | None] = mapped_column(String(CONVERSATION_MAX))


class Undelivered(Base):
    """Private messages waiting for a registered user who was offline when they were sent: delivered (and
    removed) when the account next logs in."""

    __tablename__ = "undelivered"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)


class SearchIndexState(Base):
    """One row: how far the search index has come with the messages stored before it existed.

    The index itself (SQLite's FTS5 table, PostgreSQL's column `messages.search_vector`, which is no model's)
    is engine-specific and described in chat.storage.search_index. Messages written since the index exists are
    indexed in the same transaction; older ones are filled in newest first, in batches, each batch moving
    `backfill_below` down with it.
    """

    __tablename__ = "search_index_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backfill_below: Mapped[int | None] = mapped_column(BigId)  # ids below this are not indexed yet; None: all are


# ------------------------------------------------------------------------------- clustered nodes (docs/CLUSTER.md)

NODE_MAX = 64
EVENT_KIND_MAX = 8


class RoomEvent(Base):
    """What happened in a room, numbered per room in commit order: what other nodes deliver to their members.
    `kind`: message (its row in `messages`: `message_id`), join, part, topic, nick, quit (`nick` and `data`)."""

    __tablename__ = "room_events"

    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(NODE_MAX))  # who wrote it (a reaped node's quits name that node)
    kind: Mapped[str] = mapped_column(String(EVENT_KIND_MAX))
    nick: Mapped[str] = mapped_column(String(NICK_MAX))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[str | None] = mapped_column(Text)  # JSON: reason, new nick, topic, mode, role, time, origin
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)  # pruned by age


class Presence(Base):
    """Who holds which nick on which node: the unique key makes a nick unique across the cluster."""

    __tablename__ = "presence"

    nick_key: Mapped[str] = mapped_column(String(NICK_MAX), primary_key=True)
    nick: Mapped[str] = mapped_column(String(NICK_MAX))
    node: Mapped[str] = mapped_column(String(NODE_MAX), index=True)
    conn: Mapped[int] = mapped_column(BigInteger)  # the member's id on its node
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RoomMember(Base):
    """Who is in which room, on which node: what a node shows of the members other nodes hold."""

    __tablename__ = "room_members"

    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"), primary_key=True)
    nick_key: Mapped[str] = mapped_column(String(NICK_MAX), primary_key=True)
    nick: Mapped[str] = mapped_column(String(NICK_MAX))
    node: Mapped[str] = mapped_column(String(NODE_MAX), index=True)


class Node(Base):
    """The nodes of a cluster and their last heartbeat: one whose heartbeat is too old is reaped by the others."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(NODE_MAX), primary_key=True)
    heartbeat: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the last number given to a private message in its inbox (node_inbox), written under this row's lock
    inbox_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # the time before which it has applied every room event and inbox entry (None: its start): what is older
    # than every node's mark may be pruned
    caught_up: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NodeInbox(Base):
    """Private messages other nodes stored for nicks held on `node`, numbered in commit order per node: the node
    delivers them in order after the last it delivered, so one sent while it was not listening is not lost."""

    __tablename__ = "node_inbox"

    node: Mapped[str] = mapped_column(String(NODE_MAX), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)  # pruned by age
