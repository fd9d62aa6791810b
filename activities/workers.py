"""Activities of worker agents: running a task on a capability queue, recording its end, checking health."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.exceptions import ApplicationError

from activities.streaming import heartbeating
from activities.task_types import TASK_TYPES, TaskContext, TaskFailed, TaskRejected, run_task_handler
from db import workers
from db.models import WorkerInstance, WorkerTask
from llm.registry import ProviderRegistry
from settings import Settings
from workflows.worker_task_types import FinishTaskInput, HealthCheckResult, RunTaskInput, TaskOutcome

logger = logging.getLogger(__name__)


@dataclass
class WorkerIdentity:
    """This process's row in worker_instances, and the tasks it runs now."""

    name: str
    worker_id: uuid.UUID | None = None
    running: set[str] = field(default_factory=set)
    endpoint: str = ""
    capabilities: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    async def ensure_registered(self, session: AsyncSession) -> uuid.UUID:
        """Return this worker's row id, registering again when the row was deregistered meanwhile."""
        if self.worker_id is None:
            self.worker_id = await workers.register_worker(session, self.name, self.endpoint, self.capabilities,
                                                           self.metadata)
        else:
            row = await session.get(WorkerInstance, self.worker_id)
            if row is None or row.status != "active":
                self.worker_id = await workers.register_worker(session, self.name, self.endpoint,
                                                               self.capabilities, self.metadata)
                logger.warning("worker %s was deregistered; registered again as %s", self.name, self.worker_id)
        return self.worker_id


class TaskActivities:
    """The activity that capability task queues serve."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], settings: Settings,
                 providers: ProviderRegistry, identity: WorkerIdentity) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.providers = providers
        self.identity = identity

    @activity.defn(name="run_worker_task")
    async def run_task(self, data: RunTaskInput) -> TaskOutcome:
        info = activity.info()
        task_type = TASK_TYPES.get(data.task_type)
        if task_type is None:
            raise ApplicationError(f"this worker has no handler for task type {data.task_type!r}",
                                   type="UnknownTaskType", non_retryable=True)
        async with self.session_factory.begin() as session:
            task = await session.get(WorkerTask, uuid.UUID(data.task_id), with_for_update=True)
            if task is None:
                raise ApplicationError(f"task {data.task_id} was deleted", type="TaskNotFound", non_retryable=True)
            task.status, task.worker_id = "running", await self.identity.ensure_registered(session)
            task.started_at, task.retry_count = datetime.now(UTC), info.attempt - 1
            payload = dict(task.payload)
        logger.info("task %s (%s) attempt %d started on %s", data.task_id, data.task_type, info.attempt,
                    self.identity.name)
        context = TaskContext(task_id=data.task_id, attempt=info.attempt, settings=self.settings,
                              providers=self.providers)
        self.identity.running.add(data.task_id)
        try:
            async with heartbeating():
                result = await run_task_handler(task_type, context, payload)
        except (TaskRejected, ValidationError) as error:
            raise ApplicationError(str(error), type="TaskRejected", non_retryable=True) from error
        except TaskFailed as error:
            raise ApplicationError(str(error), type="TaskFailed") from error
        finally:
            self.identity.running.discard(data.task_id)
        return TaskOutcome(result=result)


class WorkerAdminActivities:
    """Activities of the core task queue: a task's final record and the health check."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.session_factory = session_factory
        self.settings = settings

    @activity.defn(name="finish_worker_task")
    async def finish_task(self, data: FinishTaskInput) -> None:
        async with self.session_factory.begin() as session:
            task = await session.get(WorkerTask, uuid.UUID(data.task_id), with_for_update=True)
            if task is None:
                return
            task.status, task.result, task.error_message = data.status, data.result, data.error
            task.completed_at = datetime.now(UTC)
        logger.info("task %s %s", data.task_id, data.status)

    @activity.defn(name="check_worker_health")
    async def check_health(self) -> HealthCheckResult:
        """Mark workers whose heartbeats stopped unhealthy, and count the pollers of each capability queue."""
        async with self.session_factory.begin() as session:
            stale = await workers.mark_stale_unhealthy(
                session, timedelta(seconds=self.settings.worker_unhealthy_after_seconds))
            capabilities = await workers.active_capabilities(session)
        if stale:
            logger.warning("workers with no heartbeat for %.0f s marked unhealthy: %s",
                           self.settings.worker_unhealthy_after_seconds, ", ".join(stale))
        pollers = {capability: await count_pollers(activity.client(), self.settings, capability)
                   for capability in sorted(capabilities)}
        return HealthCheckResult(marked_unhealthy=stale, pollers=pollers)


# Temporal lists a poller for minutes after its worker stopped; a live one polls again within a minute.
POLLER_FRESH_SECONDS = 90


async def count_pollers(client: object, settings: Settings, capability: str) -> int:
    """Return how many workers poll the capability's task queue now, as Temporal reports."""
    response = await client.workflow_service.describe_task_queue(  # type: ignore[attr-defined]
        DescribeTaskQueueRequest(namespace=settings.temporal_namespace,
                                 task_queue=TaskQueue(name=settings.capability_queue(capability)),
                                 task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
    cutoff = datetime.now(UTC) - timedelta(seconds=POLLER_FRESH_SECONDS)
    return sum(1 for poller in response.pollers
               if poller.last_access_time.ToDatetime(tzinfo=UTC) >= cutoff)
