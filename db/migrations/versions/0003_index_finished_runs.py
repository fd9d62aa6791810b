"""Index the `done` events of run_events, to find runs past their retention period.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_run_events_done_created_at", "run_events", ["created_at"], unique=False,
        postgresql_where=sa.text("event = 'done'"),
    )


def downgrade() -> None:
    op.drop_index("ix_run_events_done_created_at", table_name="run_events",
                  postgresql_where=sa.text("event = 'done'"))
