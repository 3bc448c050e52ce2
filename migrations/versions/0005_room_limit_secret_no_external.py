"""rooms gain three IRC modes: +l (member_limit), +s (secret), and +n as a setting (no_external, on by default)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Plain ADD COLUMNs with defaults, never a rebuild (messages refer to rooms): every existing room keeps what it had,
no limit, not secret, and no messages from outside (`no_external` true: +n was always on before this revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rooms", sa.Column("member_limit", sa.Integer(), nullable=True))
    op.add_column("rooms", sa.Column("secret", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("rooms", sa.Column("no_external", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    for column in ("no_external", "secret", "member_limit"):
        op.drop_column("rooms", column)  # SQLite 3.35+ drops a column in place
