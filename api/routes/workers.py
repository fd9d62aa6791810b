"""Worker agents and their tasks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from temporalio.service import RPCError, RPCStatusCode

from activities.task_types import TASK_TYPES
from activities.workers import count_pollers
from api.deps import SessionDep, StateDep
from api.permissions import ConversationReader, ConversationWriter, Permission, requires, sees_everything
from api.schemas import Page, TaskCreate, TaskOut, TaskTypeOut, WorkerOut, error_responses
from api.worker_tasks import create_task, task_out, workflow_id
from db import workers as worker_records
from db.models import TASK_STATUSES, WORKER_STATUSES, User, WorkerInstance, WorkerTask

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/workers", tags=["workers"], responses=error_responses(401, 403))

WorkerManager = Annotated[User, requires(Permission.MANAGE_WORKERS)]
MAX_OFFSET = 10_000_000


def _worker_out(worker: WorkerInstance, running: int) -> WorkerOut:
    return WorkerOut(id=worker.id, name=worker.name, endpoint=worker.endpoint, capabilities=list(worker.capabilities),
                     status=worker.status, last_heartbeat=worker.last_heartbeat, created_at=worker.created_at,
                     running_tasks=running, metadata=dict(worker.metadata_))


@router.get("", response_model=list[WorkerOut])
async def list_workers(
    _user: ConversationReader, session: SessionDep,
    status_filter: Annotated[Literal[WORKER_STATUSES] | None, Query(alias="status")] = None,  # type: ignore[valid-type]
    capability: Annotated[str | None, Query(max_length=100)] = None,
) -> list[WorkerOut]:
    """List registered workers with their status and the tasks each runs now."""
    rows = await worker_records.list_workers(session, status_filter, capability)
    running = await worker_records.running_counts(session, [row.id for row in rows])
    return [_worker_out(row, running.get(row.id, 0)) for row in rows]


@router.get("/task-types", response_model=list[TaskTypeOut], responses=error_responses(503))
async def list_task_types(state: StateDep, _user: ConversationReader) -> list[TaskTypeOut]:
    """List the task types, each with its payload schema and how many workers serve it now."""
    names = sorted(TASK_TYPES)
    try:
        pollers = await asyncio.gather(*(count_pollers(state.temporal, state.settings, name) for name in names))
    except RPCError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal is unavailable: {error.message}") from error
    return [TaskTypeOut(name=name, description=TASK_TYPES[name].description,
                        payload_schema=TASK_TYPES[name].params.model_json_schema(), workers=count)
            for name, count in zip(names, pollers, strict=True)]


@router.post("/tasks", response_model=TaskOut, status_code=status.HTTP_201_CREATED,
             responses=error_responses(422, 503))
async def create_worker_task(body: TaskCreate, state: StateDep, user: ConversationWriter) -> TaskOut:
    """Queue a task for the workers with its capability; it waits for one up to PAF_WORKER_TASK_WAIT_SECONDS."""
    task = await create_task(state, body, user.id, {"source": "api"})
    return await task_out(state.temporal, state.settings, task, explain=True)


@router.get("/tasks", response_model=Page[TaskOut])
async def list_worker_tasks(
    request: Request, user: ConversationReader, session: SessionDep,
    status_filter: Annotated[Literal[TASK_STATUSES] | None, Query(alias="status")] = None,  # type: ignore[valid-type]
    task_type: Annotated[str | None, Query(max_length=100)] = None,
    worker_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Page[TaskOut]:
    """List the caller's tasks (everyone's with admin_access), newest first."""
    owner = None if sees_everything(request, user) else user.id
    rows, total = await worker_records.list_tasks(session, owner, status_filter, task_type, worker_id, limit, offset)
    return Page[TaskOut](items=[TaskOut.model_validate(row) for row in rows], total=total, limit=limit,
                         offset=offset)


async def _visible_task(session: SessionDep, request: Request, user: User, task_id: uuid.UUID) -> WorkerTask:
    task = await session.get(WorkerTask, task_id)
    if task is None or (task.user_id != user.id and not sees_everything(request, user)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Task {task_id} not found")
    return task


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=error_responses(404))
async def get_worker_task(task_id: uuid.UUID, request: Request, state: StateDep, user: ConversationReader,
                          session: SessionDep) -> TaskOut:
    """Return a task, with the reason a pending one waits."""
    return await task_out(state.temporal, state.settings, await _visible_task(session, request, user, task_id),
                          explain=True, session_factory=state.session_factory)


@router.post("/tasks/{task_id}/cancel", response_model=TaskOut, status_code=status.HTTP_202_ACCEPTED,
             responses=error_responses(404, 409))
async def cancel_worker_task(task_id: uuid.UUID, request: Request, state: StateDep, user: ConversationWriter,
                             session: SessionDep) -> TaskOut:
    """Cancel a pending or running task; a running handler is stopped at its next heartbeat."""
    task = await _visible_task(session, request, user, task_id)
    if task.status not in ("pending", "running"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"Task {task_id} has already ended: {task.status}")
    try:
        await state.temporal.get_workflow_handle(workflow_id(task.id)).cancel()
    except RPCError as error:
        await session.refresh(task)
        if task.status not in ("pending", "running"):
            # The task ended between the check above and the cancel request.
            raise HTTPException(status.HTTP_409_CONFLICT, f"Task {task_id} has already ended: {task.status}") from error
        if error.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"Temporal is unavailable: {error.message}") from error
    logger.info("task %s cancelled by user %s", task.id, user.id)
    return TaskOut.model_validate(task)


@router.get("/{worker_id}", response_model=WorkerOut, responses=error_responses(404))
async def get_worker(worker_id: uuid.UUID, _user: ConversationReader, session: SessionDep) -> WorkerOut:
    worker = await session.get(WorkerInstance, worker_id)
    if worker is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Worker {worker_id} not found")
    running = await worker_records.running_counts(session, [worker.id])
    return _worker_out(worker, running.get(worker.id, 0))


@router.delete("/{worker_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404))
async def deregister_worker(worker_id: uuid.UUID, user: WorkerManager, session: SessionDep) -> Response:
    """Mark a worker inactive; its row stays, so its tasks keep their worker_id.

    A process still running registers again under a new id at its next heartbeat.
    """
    worker = await session.get(WorkerInstance, worker_id)
    if worker is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Worker {worker_id} not found")
    worker.status = "inactive"
    # A new name, so the live process's next heartbeat registers a fresh row instead of reviving this one.
    worker.name = f"{worker.name}-deregistered-{uuid.uuid4().hex[:8]}"[:100]
    await session.commit()
    logger.info("worker %s (%s) deregistered by user %s", worker.name, worker_id, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
