"""room_roles.nick and nick_key widen from 20 to 100 characters: bans (+b), ban exceptions (+e) and invite
exceptions (+I) may be masks (`ba*!*@*`, chat.protocol.masks), longer than a nick

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

A type change only: every existing row stays as it is (a nick is a mask-free entry). PostgreSQL widens a VARCHAR
in place, without a rewrite; SQLite does not enforce VARCHAR lengths, and batch mode rebuilds the small table
(nothing refers to it) so that the schema says what the models say.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NICK_MAX, MASK_MAX = 20, 100


def upgrade() -> None:
    with op.batch_alter_table("room_roles") as table:
        for column in ("nick", "nick_key"):
            table.alter_column(column, existing_type=sa.String(NICK_MAX), type_=sa.String(MASK_MAX),
                               existing_nullable=False)


def downgrade() -> None:
    op.execute("DELETE FROM room_roles WHERE nick_key LIKE '%!%'")  # the masks: no nick column holds them
    with op.batch_alter_table("room_roles") as table:
        for column in ("nick", "nick_key"):
            table.alter_column(column, existing_type=sa.String(MASK_MAX), type_=sa.String(NICK_MAX),
                               existing_nullable=False)
