"""Index messages by conversation and creation time, for the newest messages of long conversations.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:55:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_conversation_id_created_at", "messages", ["conversation_id", "created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_conversation_id_created_at", table_name="messages")
