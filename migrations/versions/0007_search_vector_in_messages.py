"""PostgreSQL: a message's search terms move into `messages.search_vector` (was the table `message_search`)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Why (docs/PERFORMANCE.md, "Search", PostgreSQL): in a table of its own each message cost PostgreSQL a second
row (heap tuple and primary key) besides the GIN entry, and a search had to join the two tables, which the planner
did by walking `messages` backwards through hundreds of thousands of rows to find a rare word's newest matches.
In a column of `messages` the vector is written by the message's own INSERT, and a search is one table's: the
planner walks the primary key backwards for common words and reads the GIN index for rare ones.

Like 0002, this takes little time on a database of any size, so `chat serve` starts at once: the column is added
empty (an ALTER without a rewrite), the partial GIN index over it is built while every row is still NULL (one read
of the table, no entries), the old table is dropped, and `search_index_state` records that every existing message is
to be indexed again. The backfill (the server's writer when idle, or `chat index`) then fills the column in, newest
first, in batches, with progress logged, as it did after 0002; until it is done, searches find the messages stored
since and the part already redone, and say so (`indexing`). SQLite: nothing changes.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("chat.storage")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.add_column("messages", sa.Column("search_vector", postgresql.TSVECTOR(), nullable=True))
    # partial: a message not indexed yet (or written by a server told to keep no index) costs the GIN nothing
    op.create_index("ix_messages_search_vector", "messages", ["search_vector"], postgresql_using="gin",
                    postgresql_where=sa.text("search_vector IS NOT NULL"))
    op.drop_index("ix_message_search_vector", table_name="message_search")
    op.drop_table("message_search")
    _reindex_everything("search terms moved into messages.search_vector")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "message_search",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("vector", postgresql.TSVECTOR(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_message_search"),
    )
    op.create_index("ix_message_search_vector", "message_search", ["vector"], postgresql_using="gin")
    op.drop_index("ix_messages_search_vector", table_name="messages")
    op.drop_column("messages", "search_vector")
    _reindex_everything("search terms moved back into message_search")


def _reindex_everything(why: str) -> None:
    last = op.get_bind().execute(sa.text("SELECT max(id) FROM messages")).scalar()
    below = last + 1 if last is not None else None
    op.execute(sa.text("UPDATE search_index_state SET backfill_below = :below WHERE id = 1").bindparams(below=below))
    if last is not None:
        log.warning("%s: messages up to id %d are not searchable until indexed again: the server indexes them "
                    "while idle, or run `chat index` on this database (safe while the server runs)", why, last,
                    extra={"event": "search_index_created", "unindexed_below": below})
