"""Activities of the job workflow: the execution record, chat turn preparation and action handlers."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.job_actions import (
    ACTION_TYPES,
    ActionContext,
    ActionFailed,
    ActionRejected,
    ChatParams,
    WorkerTaskParams,
    run_handler,
)
from activities.streaming import heartbeating
from db import chat
from db.models import Conversation, CoreJob, JobExecution, User, WorkerTask
from settings import Settings
from workflows.job_types import (
    ActionOutcome,
    ExecutionPlan,
    FinishExecutionInput,
    RunActionInput,
    StartExecutionInput,
)
from workflows.upee_types import UPEEInput
from workflows.worker_task_types import WorkerTaskInput

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("scheduled", "running")


class JobActivities:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.session_factory = session_factory
        self.settings = settings

    @activity.defn(name="start_job_execution")
    async def start_execution(self, data: StartExecutionInput) -> ExecutionPlan:
        """Write the execution row and mark the job running; the row's id is the workflow's own."""
        # Derived from the run id, so a retried activity finds the row it already wrote.
        execution_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{data.workflow_id}/{data.run_id}")
        async with self.session_factory.begin() as session:
            job = await session.get(CoreJob, uuid.UUID(data.job_id), with_for_update=True)
            if job is None or job.status == "deleted":
                return ExecutionPlan(execution_id="", action_type="", params={}, owner_id="", max_retries=0,
                                     timeout_seconds=1, skip_reason="the job was deleted")
            owner = await session.get(User, job.user_id)
            if owner is None or not owner.is_active:
                # A deactivated user's jobs stop with their keys; reactivation lets them run again.
                return ExecutionPlan(execution_id="", action_type="", params={}, owner_id="", max_retries=0,
                                     timeout_seconds=1, skip_reason="the job's owner is deactivated")
            if await session.get(JobExecution, execution_id) is None:
                session.add(JobExecution(id=execution_id, job_id=job.id, status="running",
                                         workflow_id=data.workflow_id, run_id=data.run_id))
            now = datetime.now(UTC)
            job.started_at = now
            job.updated_at = now
            if job.status in ACTIVE_STATUSES:
                job.status = "running"
            plan = ExecutionPlan(
                execution_id=str(execution_id), action_type=job.action_type, params=dict(job.payload),
                owner_id=str(job.user_id), max_retries=job.max_retries,
                timeout_seconds=job.timeout_seconds or self.settings.job_default_timeout_seconds)
        logger.info("job %s execution %s started (%s)", data.job_id, execution_id, data.workflow_id)
        return plan

    @activity.defn(name="prepare_job_chat_turn")
    async def prepare_chat_turn(self, data: RunActionInput) -> UPEEInput:
        """Store the job's prompt as a new turn of its conversation and return the turn's input."""
        params = ChatParams.model_validate(data.params)
        model = params.model or self.settings.default_model_name
        if self.settings.model_by_name(model) is None:
            raise ApplicationError(f"model {model!r} is not configured", type="UnknownModelError",
                                   non_retryable=True)
        # One request id per attempt, derived so that a retried activity reuses its records.
        request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{data.execution_id}/chat/{data.attempt}")
        assistant_message_id = uuid.uuid5(request_id, "answer")
        async with self.session_factory.begin() as session:
            conversation = await self._conversation(session, params, data)
            existing = await chat.user_message_id(session, request_id)
            user_message_id = existing or await chat.add_turn(
                session, conversation.id, params.prompt, request_id, assistant_message_id, model)
            running = await chat.running_turns(session, conversation.id)
        return UPEEInput(
            request_id=str(request_id), conversation_id=str(conversation.id), user_message_id=str(user_message_id),
            assistant_message_id=str(assistant_message_id), model=model, temperature=params.temperature,
            quality_threshold=self.settings.quality_threshold, max_refinements=self.settings.max_refinements,
            history_messages=self.settings.history_messages,
            wait_for_earlier_turns=any(turn != request_id for turn in running),
            worker_task_timeout_seconds=self.settings.upee_worker_task_timeout_seconds,
        )

    async def _conversation(self, session: AsyncSession, params: ChatParams, data: RunActionInput) -> Conversation:
        conversation = None
        if params.conversation_id:
            conversation = await session.get(Conversation, params.conversation_id, with_for_update=True)
        if conversation is None or str(conversation.user_id) != data.owner_id:
            raise ApplicationError("the job's conversation was deleted; update the job's action to a new one",
                                   type="ConversationDeletedError", non_retryable=True)
        await session.execute(update(Conversation).where(Conversation.id == conversation.id)
                              .values(updated_at=datetime.now(UTC)))
        return conversation

    @activity.defn(name="create_job_worker_task")
    async def create_worker_task(self, data: RunActionInput) -> WorkerTaskInput:
        """Store the job's worker task for this attempt as pending and return the input of its workflow."""
        params = WorkerTaskParams.model_validate(data.params)
        # Derived from the execution and attempt, so a retried activity finds the row it already wrote.
        task_id = uuid.uuid5(uuid.UUID(data.execution_id), f"worker-task-{data.attempt}")
        timeout = self.settings.worker_task_default_timeout_seconds
        async with self.session_factory.begin() as session:
            if await session.get(WorkerTask, task_id) is None:
                session.add(WorkerTask(
                    id=task_id, task_type=params.task_type, payload=params.payload, status="pending",
                    priority=params.priority, max_retries=0, timeout_seconds=timeout,
                    user_id=uuid.UUID(data.owner_id),
                    origin={"source": "job", "job_id": data.job_id, "execution_id": data.execution_id}))
        return WorkerTaskInput(task_id=str(task_id), task_type=params.task_type,
                               queue=self.settings.capability_queue(params.task_type), priority=params.priority,
                               max_retries=0, timeout_seconds=timeout,
                               wait_seconds=self.settings.worker_task_wait_seconds)

    @activity.defn(name="run_job_action")
    async def run_action(self, data: RunActionInput) -> ActionOutcome:
        action = ACTION_TYPES.get(data.action_type)
        if action is None or action.handler is None:
            raise ApplicationError(f"no handler is registered for action type {data.action_type!r} on this worker",
                                   type="UnknownActionType", non_retryable=True)
        context = ActionContext(job_id=data.job_id, execution_id=data.execution_id, owner_id=data.owner_id,
                                attempt=data.attempt, settings=self.settings)
        try:
            async with heartbeating():
                measured = await run_handler(action, context, data.params)
        except ActionRejected as error:
            raise ApplicationError(str(error), type="ActionRejected", non_retryable=True) from error
        except ActionFailed as error:
            raise ApplicationError(str(error), type="ActionFailed") from error
        return ActionOutcome(result=measured.result, cpu_seconds=measured.cpu_seconds,
                             peak_memory_bytes=measured.peak_memory_bytes)

    @activity.defn(name="finish_job_execution")
    async def finish_execution(self, data: FinishExecutionInput) -> None:
        """Store the execution's outcome and bring the job's status, result and timestamps up to date."""
        now = datetime.now(UTC)
        result: dict[str, Any] | None = data.result
        async with self.session_factory.begin() as session:
            execution = await session.get(JobExecution, uuid.UUID(data.execution_id))
            if execution is not None:
                execution.status = data.status
                execution.result = result
                execution.error_message = data.error
                execution.completed_at = now
                execution.attempts = data.attempts
                execution.cpu_usage = data.cpu_seconds
                execution.memory_usage = float(data.peak_memory_bytes) if data.peak_memory_bytes is not None else None
            job = await session.get(CoreJob, uuid.UUID(data.job_id), with_for_update=True)
            if job is None:
                return
            job.result = result
            job.error_message = data.error
            job.completed_at = now
            job.updated_at = now
            job.retry_count = max(data.attempts - 1, 0)
            if job.job_type == "one_time" and job.status in ACTIVE_STATUSES:
                job.status = "completed" if data.status == "completed" else "failed"
            elif job.status == "running":
                job.status = "scheduled"
        logger.info("job %s execution %s %s, attempts: %d", data.job_id, data.execution_id, data.status,
                    data.attempts)
