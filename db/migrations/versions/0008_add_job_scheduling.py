"""Add what scheduled jobs need: owner, action, time zone, overlap policy and execution details.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('queued', 'running', 'completed', 'failed', 'paused')"
NEW_STATUSES = ("status IN ('scheduled', 'running', 'completed', 'failed', 'paused', 'deleted', "
                "'schedule_missing')")
OVERLAP = "overlap IN ('skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all')"


def upgrade() -> None:
    # NOTE: user_id and action_type are required; no release created jobs before this revision.
    op.drop_constraint(op.f("ck_core_jobs_status"), "core_jobs", type_="check")
    op.alter_column("core_jobs", "status", server_default="scheduled")
    op.create_check_constraint(op.f("ck_core_jobs_status"), "core_jobs", NEW_STATUSES)
    op.add_column("core_jobs", sa.Column("user_id", sa.UUID(), nullable=False))
    op.add_column("core_jobs", sa.Column("action_type", sa.String(length=100), nullable=False))
    op.add_column("core_jobs", sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False))
    op.add_column("core_jobs", sa.Column("overlap", sa.String(length=20), server_default="skip", nullable=False))
    op.add_column("core_jobs", sa.Column("catchup_window_seconds", sa.Integer(), server_default="60",
                                         nullable=False))
    op.add_column("core_jobs", sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False))
    op.add_column("core_jobs", sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                                         nullable=False))
    op.add_column("core_jobs", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(op.f("ck_core_jobs_overlap"), "core_jobs", OVERLAP)
    op.create_foreign_key(op.f("fk_core_jobs_user_id_users"), "core_jobs", "users", ["user_id"], ["id"],
                          ondelete="CASCADE")
    op.create_index(op.f("ix_core_jobs_user_id"), "core_jobs", ["user_id"])

    op.add_column("job_executions", sa.Column("workflow_id", sa.String(length=255), nullable=True))
    op.add_column("job_executions", sa.Column("run_id", sa.String(length=64), nullable=True))
    op.add_column("job_executions", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.create_index("ix_job_executions_job_id_started_at", "job_executions", ["job_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_job_executions_job_id_started_at", table_name="job_executions")
    op.drop_column("job_executions", "attempts")
    op.drop_column("job_executions", "run_id")
    op.drop_column("job_executions", "workflow_id")

    op.drop_index(op.f("ix_core_jobs_user_id"), table_name="core_jobs")
    op.drop_constraint(op.f("fk_core_jobs_user_id_users"), "core_jobs", type_="foreignkey")
    op.drop_constraint(op.f("ck_core_jobs_overlap"), "core_jobs", type_="check")
    for column in ("deleted_at", "updated_at", "enabled", "catchup_window_seconds", "overlap", "timezone",
                   "action_type", "user_id"):
        op.drop_column("core_jobs", column)
    op.drop_constraint(op.f("ck_core_jobs_status"), "core_jobs", type_="check")
    # Statuses that the old constraint does not know map to its nearest ones.
    op.execute("UPDATE core_jobs SET status = 'queued' WHERE status = 'scheduled'")
    op.execute("UPDATE core_jobs SET status = 'failed' WHERE status IN ('deleted', 'schedule_missing')")
    op.alter_column("core_jobs", "status", server_default="queued")
    op.create_check_constraint(op.f("ck_core_jobs_status"), "core_jobs", OLD_STATUSES)
