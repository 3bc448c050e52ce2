"""clustered nodes: a numbered inbox of private messages per node, each node's caught-up mark, pruning by age

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Only `chat serve --cluster` (PostgreSQL) writes these. `nodes.inbox_seq` numbers the private messages other nodes
stored for nicks held on a node (`node_inbox`), under that node row's lock, as `rooms.seq` numbers a room's
events: a node reads its inbox after the last number it delivered, so one sent while it was not listening is
delivered when it catches up. `nodes.caught_up`: the time before which the node has applied every room event
and inbox entry; `room_events` and `node_inbox` rows older than every node's mark (and than a minimum age) are
pruned, by `created_at` (indexed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("inbox_seq", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("nodes", sa.Column("caught_up", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "node_inbox",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node", "seq", name="pk_node_inbox"),
    )
    op.create_index("ix_node_inbox_created_at", "node_inbox", ["created_at"])
    op.create_index("ix_room_events_created_at", "room_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_room_events_created_at", table_name="room_events")
    op.drop_index("ix_node_inbox_created_at", table_name="node_inbox")
    op.drop_table("node_inbox")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("caught_up")
        batch.drop_column("inbox_seq")
