"""Add upee_sessions.status, so a new message can find the turn still running in its conversation.

Rows that exist already are marked completed: their turns have ended.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("upee_sessions", sa.Column("status", sa.String(length=20), server_default="completed",
                                             nullable=False))
    op.alter_column("upee_sessions", "status", server_default="running")
    op.create_check_constraint(op.f("ck_upee_sessions_status"), "upee_sessions",
                               "status IN ('running', 'completed', 'failed', 'cancelled')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_upee_sessions_status"), "upee_sessions", type_="check")
    op.drop_column("upee_sessions", "status")
