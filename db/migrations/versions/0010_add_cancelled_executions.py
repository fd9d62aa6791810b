"""Let a job execution end as cancelled, not only completed or failed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_job_executions_status"), "job_executions", type_="check")
    op.create_check_constraint(op.f("ck_job_executions_status"), "job_executions",
                               "status IN ('running', 'completed', 'failed', 'cancelled')")


def downgrade() -> None:
    op.execute("UPDATE job_executions SET status = 'failed' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_job_executions_status"), "job_executions", type_="check")
    op.create_check_constraint(op.f("ck_job_executions_status"), "job_executions",
                               "status IN ('running', 'completed', 'failed')")
