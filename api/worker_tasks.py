"""Creating worker tasks: validation, the task's row and its workflow, shared by the routes."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from activities.task_types import TASK_TYPES
from activities.workers import count_pollers
from api.deps import AppState
from api.schemas import TaskCreate, TaskOut
from db.models import WorkerInstance, WorkerTask
from settings import Settings
from workflows.worker_task_types import WorkerTaskInput
from workflows.worker_tasks import WorkerTaskWorkflow

logger = logging.getLogger(__name__)


def workflow_id(task_id: uuid.UUID) -> str:
    return f"worker-task-{task_id}"


def check_task(body: TaskCreate) -> dict[str, Any]:
    """Validate the task type and payload; return the payload as stored, or raise 422 naming the field."""
    task_type = TASK_TYPES.get(body.task_type)
    if task_type is None:
        known = ", ".join(sorted(TASK_TYPES))
        raise RequestValidationError([{"loc": ("body", "task_type"), "type": "value_error", "input": body.task_type,
                                       "msg": f"unknown task type {body.task_type!r}; known types: {known}"}])
    try:
        params = task_type.params.model_validate(body.payload)
    except ValidationError as error:
        raise RequestValidationError([{**item, "loc": ("body", "payload", *item["loc"])}
                                      for item in error.errors()]) from error
    return params.model_dump(mode="json", exclude_none=True)


async def create_task(state: AppState, body: TaskCreate, user_id: uuid.UUID | None,
                      origin: dict[str, Any]) -> WorkerTask:
    """Store the task as pending and start its workflow, which Temporal routes to a capable worker."""
    payload = check_task(body)
    settings = state.settings
    task = WorkerTask(id=uuid.uuid4(), task_type=body.task_type, payload=payload, priority=body.priority,
                      max_retries=body.max_retries, status="pending", user_id=user_id, origin=origin,
                      timeout_seconds=body.timeout_seconds or settings.worker_task_default_timeout_seconds)
    # Committed before the workflow starts, so a worker that takes the task at once finds its row.
    async with state.session_factory.begin() as session:
        session.add(task)
        await session.flush()
        await session.refresh(task)
    try:
        await state.temporal.start_workflow(
            WorkerTaskWorkflow.run, task_input(settings, task), id=workflow_id(task.id),
            task_queue=settings.temporal_task_queue)
    except RPCError as error:
        logger.error("could not start the workflow of task %s: %s", task.id, error)
        async with state.session_factory.begin() as session:
            await session.execute(update(WorkerTask).where(WorkerTask.id == task.id).values(
                status="failed", error_message=f"the workflow could not be started: {error.message}"))
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "The workflow service is unavailable. Try again shortly") from error
    logger.info("created %s task %s (priority %d)", task.task_type, task.id, task.priority)
    return task


def task_input(settings: Settings, task: WorkerTask) -> WorkerTaskInput:
    return WorkerTaskInput(task_id=str(task.id), task_type=task.task_type,
                           queue=settings.capability_queue(task.task_type), priority=task.priority,
                           max_retries=task.max_retries, timeout_seconds=task.timeout_seconds,
                           wait_seconds=settings.worker_task_wait_seconds)


async def task_out(client: Client, settings: Settings, task: WorkerTask, explain: bool = False,
                   session_factory: async_sessionmaker[AsyncSession] | None = None) -> TaskOut:
    """Return the task, with the reason it waits when it is pending and `explain` is set."""
    shown = TaskOut.model_validate(task)
    if explain and task.status == "running" and task.worker_id is not None and session_factory is not None:
        async with session_factory() as session:
            worker = await session.get(WorkerInstance, task.worker_id)
        if worker is None or worker.status != "active":
            name = worker.name if worker is not None else str(task.worker_id)
            shown.waiting_reason = (f"its worker {name} stopped; the task runs again when another worker with the "
                                    f"capability {task.task_type} takes it, and fails if none does within "
                                    f"{settings.worker_task_wait_seconds:.0f} s")
        return shown
    if explain and task.status == "pending":
        try:
            pollers = await count_pollers(client, settings, task.task_type)
        except RPCError as error:
            shown.waiting_reason = f"cannot ask Temporal for the workers of {task.task_type}: {error.message}"
            return shown
        if pollers == 0:
            shown.waiting_reason = (f"no worker serves the capability {task.task_type}; the task fails if none "
                                    f"takes it within {settings.worker_task_wait_seconds:.0f} s")
        else:
            shown.waiting_reason = (f"waiting for a free worker with the capability {task.task_type} "
                                    f"({pollers} polling now)")
    return shown
