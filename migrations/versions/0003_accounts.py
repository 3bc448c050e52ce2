"""accounts (users gain a password, a registration time, an admin flag), owned rooms, stored private conversations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Every existing row is kept: the users rows become guest nicknames (no password) until someone registers one;
rooms become unowned rooms with no settings (as they were); messages keep their ids and texts, and private
messages of old stay out of /history @NICK (they name no accounts). On SQLite `users` is rebuilt once, for
AUTOINCREMENT: account ids must never be reused (see chat.storage.models.User).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("users", recreate="always" if sqlite else "auto",
                              table_kwargs={"sqlite_autoincrement": True} if sqlite else {}) as batch:
        batch.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("admin", sa.Boolean(), server_default=sa.false(), nullable=False))
    # plain ADD COLUMNs, never a rebuild: the messages table may be huge, and rebuilding rooms would drop a table
    # that messages refer to (with foreign keys on, SQLite refuses)
    op.add_column("rooms", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.add_column("rooms", sa.Column("owner_nick", sa.String(length=20), nullable=True))
    op.add_column("rooms", sa.Column("invite_only", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("rooms", sa.Column("moderated", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("rooms", sa.Column("topic_ops_only", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("rooms", sa.Column("join_key", sa.String(length=64), nullable=True))
    op.add_column("messages", sa.Column("sender_account_id", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("recipient_account_id", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("conversation", sa.String(length=24), nullable=True))
    op.create_index("ix_messages_conversation_id", "messages", ["conversation", "id"], unique=False)
    op.create_table(
        "room_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("nick", sa.String(length=20), nullable=False),
        sa.Column("nick_key", sa.String(length=20), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("set_by", sa.String(length=20), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_room_roles_room_id_rooms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_roles")),
        sa.UniqueConstraint("room_id", "role", "nick_key", name="uq_room_roles_room_id_role_nick_key"),
    )
    op.create_table(
        "undelivered",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name=op.f("fk_undelivered_message_id_messages")),
        sa.PrimaryKeyConstraint("account_id", "message_id", name=op.f("pk_undelivered")),
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_table("undelivered")
    op.drop_table("room_roles")
    op.drop_index("ix_messages_conversation_id", table_name="messages")
    for column in ("conversation", "recipient_account_id", "sender_account_id"):
        op.drop_column("messages", column)  # SQLite 3.35+ drops a column in place
    for column in ("join_key", "topic_ops_only", "moderated", "invite_only", "owner_nick", "owner_id"):
        op.drop_column("rooms", column)
    with op.batch_alter_table("users", recreate="always" if sqlite else "auto") as batch:
        for column in ("admin", "registered_at", "password_hash"):
            batch.drop_column(column)
