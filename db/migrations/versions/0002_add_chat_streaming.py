"""Add message status and request id, and the run_events stream table.

A message's status tells a streaming, cancelled or failed answer from a
completed one. run_events keeps every server-sent event of a chat turn so a
client can resume a stream with Last-Event-ID.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages", sa.Column("status", sa.String(length=20), server_default="completed", nullable=False)
    )
    op.add_column("messages", sa.Column("request_id", sa.UUID(), nullable=True))
    op.create_check_constraint(
        op.f("ck_messages_status"), "messages", "status IN ('streaming', 'completed', 'cancelled', 'failed')"
    )
    op.create_index(op.f("ix_messages_request_id"), "messages", ["request_id"], unique=False)

    op.create_table(
        "run_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("event", sa.String(length=30), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_events")),
    )
    op.create_index("ix_run_events_request_id_id", "run_events", ["request_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_run_events_request_id_id", table_name="run_events")
    op.drop_table("run_events")
    op.drop_index(op.f("ix_messages_request_id"), table_name="messages")
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.drop_column("messages", "request_id")
    op.drop_column("messages", "status")
