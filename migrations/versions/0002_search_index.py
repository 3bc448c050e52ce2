"""the search index, empty; older messages are indexed afterwards, in batches (chat index)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

This runs at every `chat serve` start on a database made before it, however big: so it only creates the (empty)
index and records which messages it does not hold yet, which takes no time on a database of any size. Indexing
them means reading every message, minutes for millions, and holding the write lock meanwhile if done here;
chat.storage.search_index.backfill() does it in short batches instead, newest first, while the server runs.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("chat.storage")


def upgrade() -> None:
    state = op.create_table(
        "search_index_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backfill_below", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_index_state")),
    )
    if op.get_bind().dialect.name == "sqlite":
        # the index's terms come from chat.search.terms; `ascii` only splits them (see chat.storage.search_index)
        op.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(terms, content='', tokenize='ascii', columnsize=0)")
    else:
        # no foreign key: its check would lock each new message's row again, for every message written; the writer
        # adds both in one transaction, and whatever deletes messages deletes their terms (as on SQLite)
        op.create_table(
            "message_search",
            sa.Column("message_id", sa.BigInteger(), nullable=False),
            sa.Column("vector", postgresql.TSVECTOR(), nullable=False),
            sa.PrimaryKeyConstraint("message_id", name="pk_message_search"),
        )
        op.create_index("ix_message_search_vector", "message_search", ["vector"], postgresql_using="gin")
    last = op.get_bind().execute(sa.text("SELECT max(id) FROM messages")).scalar()
    op.bulk_insert(state, [{"id": 1, "backfill_below": last + 1 if last is not None else None}])
    if last is not None:
        log.warning("search index created: messages up to id %d are not searchable until indexed: the server "
                    "indexes them while idle, or run `chat index` on this database (safe while the server runs)", last,
                    extra={"event": "search_index_created", "unindexed_below": last + 1})


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE messages_fts")
    else:
        op.drop_index("ix_message_search_vector", table_name="message_search")
        op.drop_table("message_search")
    op.drop_table("search_index_state")
