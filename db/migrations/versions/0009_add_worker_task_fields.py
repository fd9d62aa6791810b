"""Add what worker tasks need: owner, timeout, origin and a cancelled status; unique worker names.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('pending', 'running', 'completed', 'failed')"
NEW_STATUSES = "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_worker_tasks_status"), "worker_tasks", type_="check")
    op.create_check_constraint(op.f("ck_worker_tasks_status"), "worker_tasks", NEW_STATUSES)
    op.add_column("worker_tasks", sa.Column("user_id", sa.UUID(), nullable=True))
    op.add_column("worker_tasks", sa.Column("timeout_seconds", sa.Integer(), server_default="300", nullable=False))
    op.add_column("worker_tasks", sa.Column("origin", postgresql.JSONB(),
                                            server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.create_foreign_key(op.f("fk_worker_tasks_user_id_users"), "worker_tasks", "users", ["user_id"], ["id"],
                          ondelete="SET NULL")
    op.create_index(op.f("ix_worker_tasks_user_id"), "worker_tasks", ["user_id"])
    op.drop_index(op.f("ix_worker_instances_name"), table_name="worker_instances")
    op.create_unique_constraint(op.f("uq_worker_instances_name"), "worker_instances", ["name"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_worker_instances_name"), "worker_instances", type_="unique")
    op.create_index(op.f("ix_worker_instances_name"), "worker_instances", ["name"], unique=False)
    op.drop_index(op.f("ix_worker_tasks_user_id"), table_name="worker_tasks")
    op.drop_constraint(op.f("fk_worker_tasks_user_id_users"), "worker_tasks", type_="foreignkey")
    op.drop_column("worker_tasks", "origin")
    op.drop_column("worker_tasks", "timeout_seconds")
    op.drop_column("worker_tasks", "user_id")
    op.execute("UPDATE worker_tasks SET status = 'failed' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_worker_tasks_status"), "worker_tasks", type_="check")
    op.create_check_constraint(op.f("ck_worker_tasks_status"), "worker_tasks", OLD_STATUSES)
