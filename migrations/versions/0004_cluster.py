"""clustered nodes: a per-room event sequence, room events, presence, room members, node heartbeats

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Only `chat serve --cluster` (PostgreSQL) writes these; a single server leaves them empty and its path unchanged.
`rooms.seq` is a plain ADD COLUMN with a default (no rebuild of rooms). On PostgreSQL the sequence `message_ids`
gives clustered nodes their message ids, so they stay unique and, under a room's row lock, increasing per room.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rooms", sa.Column("seq", sa.BigInteger(), server_default="0", nullable=False))
    op.create_table(
        "room_events",
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("nick", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name="fk_room_events_room_id_rooms"),
        sa.PrimaryKeyConstraint("room_id", "seq", name="pk_room_events"),
    )
    op.create_table(
        "presence",
        sa.Column("nick_key", sa.String(length=20), nullable=False),
        sa.Column("nick", sa.String(length=20), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("conn", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nick_key", name="pk_presence"),
    )
    op.create_index("ix_presence_node", "presence", ["node"])
    op.create_table(
        "room_members",
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("nick_key", sa.String(length=20), nullable=False),
        sa.Column("nick", sa.String(length=20), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name="fk_room_members_room_id_rooms"),
        sa.PrimaryKeyConstraint("room_id", "nick_key", name="pk_room_members"),
    )
    op.create_index("ix_room_members_node", "room_members", ["node"])
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_nodes"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE IF NOT EXISTS message_ids AS BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS message_ids")
    op.drop_table("nodes")
    op.drop_index("ix_room_members_node", table_name="room_members")
    op.drop_table("room_members")
    op.drop_index("ix_presence_node", table_name="presence")
    op.drop_table("presence")
    op.drop_table("room_events")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("seq")
