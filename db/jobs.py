"""Queries on jobs and their executions."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CoreJob, JobExecution


async def get_visible_job(
    session: AsyncSession, job_id: uuid.UUID, user_id: uuid.UUID, see_all: bool, lock: bool = False
) -> CoreJob | None:
    """Return the job when the caller owns it or may see every job, else None."""
    statement = select(CoreJob).where(CoreJob.id == job_id)
    if not see_all:
        statement = statement.where(CoreJob.user_id == user_id)
    if lock:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def list_jobs(
    session: AsyncSession, user_id: uuid.UUID, see_all: bool, include_deleted: bool, status: str | None,
    limit: int, offset: int,
) -> tuple[list[CoreJob], int]:
    statement = select(CoreJob)
    if not see_all:
        statement = statement.where(CoreJob.user_id == user_id)
    if not include_deleted:
        statement = statement.where(CoreJob.status != "deleted")
    if status is not None:
        statement = statement.where(CoreJob.status == status)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(statement.order_by(CoreJob.created_at.desc(), CoreJob.id).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def count_live_jobs(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Return how many jobs the user has that are not deleted."""
    return int(await session.scalar(select(func.count()).select_from(CoreJob).where(
        CoreJob.user_id == user_id, CoreJob.status != "deleted")) or 0)


async def list_executions(
    session: AsyncSession, job_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[JobExecution], int]:
    total = await session.scalar(select(func.count()).select_from(JobExecution).where(JobExecution.job_id == job_id))
    rows = await session.scalars(
        select(JobExecution).where(JobExecution.job_id == job_id)
        .order_by(JobExecution.started_at.desc(), JobExecution.id).limit(limit).offset(offset))
    return list(rows), int(total or 0)
