"""Worker agent registry and worker task records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import WorkerInstance, WorkerTask


async def register_worker(
    session: AsyncSession, name: str, endpoint: str, capabilities: list[str], metadata: dict[str, Any]
) -> uuid.UUID:
    """Insert or update the worker's row by name, mark it active and return its id."""
    now = datetime.now(UTC)
    statement = insert(WorkerInstance).values(
        name=name, endpoint=endpoint, capabilities=capabilities, metadata_=metadata, status="active",
        last_heartbeat=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[WorkerInstance.name],
        set_={"endpoint": endpoint, "capabilities": capabilities, "metadata": metadata, "status": "active",
              "last_heartbeat": now},
    ).returning(WorkerInstance.id)
    return uuid.UUID(str((await session.execute(statement)).scalar_one()))


async def heartbeat(session: AsyncSession, worker_id: uuid.UUID, running_tasks: int) -> bool:
    """Record a heartbeat and the current load; False when the row was deregistered or deleted."""
    result = await session.execute(
        update(WorkerInstance).where(WorkerInstance.id == worker_id, WorkerInstance.status != "inactive").values(
            last_heartbeat=datetime.now(UTC), status="active",
            metadata_=WorkerInstance.metadata_.op("||")(func.jsonb_build_object("running_tasks", running_tasks)),
        ))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_inactive(session: AsyncSession, worker_id: uuid.UUID) -> None:
    await session.execute(update(WorkerInstance).where(WorkerInstance.id == worker_id).values(status="inactive"))


async def mark_stale_unhealthy(session: AsyncSession, older_than: timedelta) -> list[str]:
    """Mark active workers whose last heartbeat is older than `older_than` unhealthy; return their names."""
    cutoff = datetime.now(UTC) - older_than
    result = await session.execute(
        update(WorkerInstance).where(WorkerInstance.status == "active", WorkerInstance.last_heartbeat < cutoff)
        .values(status="unhealthy").returning(WorkerInstance.name))
    return [str(name) for name in result.scalars()]


async def active_capabilities(session: AsyncSession) -> set[str]:
    rows = await session.scalars(select(WorkerInstance.capabilities).where(WorkerInstance.status != "inactive"))
    return {capability for capabilities in rows for capability in capabilities}


async def running_counts(session: AsyncSession, worker_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Return how many tasks each worker is running now, from the task records."""
    if not worker_ids:
        return {}
    rows = await session.execute(
        select(WorkerTask.worker_id, func.count()).where(WorkerTask.worker_id.in_(worker_ids),
                                                         WorkerTask.status == "running")
        .group_by(WorkerTask.worker_id))
    return {worker_id: int(count) for worker_id, count in rows.all()}


async def list_workers(session: AsyncSession, status: str | None, capability: str | None) -> list[WorkerInstance]:
    statement = select(WorkerInstance).order_by(WorkerInstance.name)
    if status is not None:
        statement = statement.where(WorkerInstance.status == status)
    if capability is not None:
        statement = statement.where(WorkerInstance.capabilities.contains([capability]))
    return list(await session.scalars(statement))


async def list_tasks(
    session: AsyncSession, user_id: uuid.UUID | None, status: str | None, task_type: str | None,
    worker_id: uuid.UUID | None, limit: int, offset: int,
) -> tuple[list[WorkerTask], int]:
    statement = select(WorkerTask)
    if user_id is not None:
        statement = statement.where(WorkerTask.user_id == user_id)
    if status is not None:
        statement = statement.where(WorkerTask.status == status)
    if task_type is not None:
        statement = statement.where(WorkerTask.task_type == task_type)
    if worker_id is not None:
        statement = statement.where(WorkerTask.worker_id == worker_id)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(statement.order_by(WorkerTask.created_at.desc(), WorkerTask.id)
                                 .limit(limit).offset(offset))
    return list(rows), int(total or 0)
