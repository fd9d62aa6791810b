"""One run of a scheduled job: an execution row, the action with its retries and timeout, the outcome."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from workflows.worker_task_types import WorkerTaskInput, WorkerTaskResult
    from workflows.worker_tasks import WorkerTaskWorkflow
    from workflows.job_types import (
        CHAT_ACTION,
        WORKER_TASK_ACTION,
        ActionOutcome,
        ExecutionPlan,
        FinishExecutionInput,
        JobRunInput,
        JobRunResult,
        RunActionInput,
        StartExecutionInput,
    )
    from workflows.common import BOOKKEEPING_RETRY_POLICY, BOOKKEEPING_TIMEOUT, failure_message
    from workflows.upee import UPEEWorkflow
    from workflows.upee_types import UPEEInput

# The workflow counts the job's retries itself, so each attempt is one activity try.
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
RETRY_DELAY = timedelta(seconds=1)
# Actions heartbeat four times a second, so a dead worker or a cancel is noticed within this.
ACTION_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
MAX_RETRY_DELAY = timedelta(seconds=60)


def _not_retryable(error: BaseException) -> bool:
    """Return whether the failure is marked non-retryable, so no further attempt can succeed."""
    while isinstance(error, (ActivityError, ChildWorkflowError)) and error.cause is not None:
        error = error.cause
    return isinstance(error, ApplicationError) and error.non_retryable


@workflow.defn(name="JobWorkflow")
class JobWorkflow:
    @workflow.run
    async def run(self, job: JobRunInput) -> JobRunResult:
        info = workflow.info()
        plan: ExecutionPlan = await workflow.execute_activity(
            "start_job_execution", StartExecutionInput(job.job_id, info.workflow_id, info.run_id),
            result_type=ExecutionPlan, start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY_POLICY)
        if plan.skip_reason:
            workflow.logger.info("job %s run skipped: %s", job.job_id, plan.skip_reason)
            return JobRunResult(execution_id="", status="skipped", attempts=0, error=plan.skip_reason)

        errors: list[str] = []
        outcome: ActionOutcome | None = None
        attempts = 0
        try:
            for attempt in range(plan.max_retries + 1):
                attempts = attempt + 1
                try:
                    outcome = await self._attempt(job.job_id, plan, attempt)
                    break
                except (ActivityError, ChildWorkflowError, ApplicationError) as error:
                    if isinstance(error.cause, CancelledError):
                        raise asyncio.CancelledError() from error
                    errors.append(self._describe(plan, error))
                    workflow.logger.warning("job %s attempt %d failed: %s", job.job_id, attempts, errors[-1])
                    if _not_retryable(error):
                        break
                if attempt < plan.max_retries:
                    await workflow.sleep(min(RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY))
        except asyncio.CancelledError:
            errors.append("the run was cancelled")
            # Temporal delivers a cancel once, so this activity still runs.
            await self._finish(job.job_id, plan, attempts, None, errors, status="cancelled")
            raise
        return await self._finish(job.job_id, plan, attempts, outcome, errors)

    async def _attempt(self, job_id: str, plan: ExecutionPlan, attempt: int) -> ActionOutcome:
        timeout = timedelta(seconds=plan.timeout_seconds)
        if plan.action_type == CHAT_ACTION:
            return await self._chat(job_id, plan, attempt, timeout)
        if plan.action_type == WORKER_TASK_ACTION:
            return await self._worker_task(job_id, plan, attempt, timeout)
        return await workflow.execute_activity(
            "run_job_action",
            RunActionInput(job_id=job_id, execution_id=plan.execution_id, owner_id=plan.owner_id,
                           action_type=plan.action_type, params=plan.params, attempt=attempt),
            result_type=ActionOutcome, start_to_close_timeout=timeout, retry_policy=SINGLE_ATTEMPT,
            heartbeat_timeout=ACTION_HEARTBEAT_TIMEOUT)

    async def _chat(self, job_id: str, plan: ExecutionPlan, attempt: int, timeout: timedelta) -> ActionOutcome:
        turn: UPEEInput = await workflow.execute_activity(
            "prepare_job_chat_turn",
            RunActionInput(job_id=job_id, execution_id=plan.execution_id, owner_id=plan.owner_id,
                           action_type=plan.action_type, params=plan.params, attempt=attempt),
            result_type=UPEEInput, start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=BOOKKEEPING_RETRY_POLICY)
        child = await workflow.start_child_workflow(UPEEWorkflow.run, turn, id=f"upee-{turn.request_id}")
        try:
            answer = await asyncio.wait_for(asyncio.shield(child), timeout=timeout.total_seconds())
        except TimeoutError:
            # Cancelling lets the turn store its partial reply as cancelled, which a hard timeout would not.
            child.cancel()
            try:
                await child
            except ChildWorkflowError:
                pass
            raise ApplicationError(f"the chat turn ran past the timeout of {plan.timeout_seconds} s",
                                   type="JobTimeout") from None
        return ActionOutcome(result={
            "conversation_id": turn.conversation_id, "request_id": turn.request_id,
            "message_id": answer.assistant_message_id, "quality_score": answer.quality_score,
            "refinements": answer.refinements,
        })

    @staticmethod
    def _describe(plan: ExecutionPlan, error: BaseException) -> str:
        cause = error.cause if isinstance(error, ActivityError) else None
        if isinstance(cause, TimeoutError) and cause.type == TimeoutType.START_TO_CLOSE:
            return f"the attempt ran past timeout_seconds ({plan.timeout_seconds} s)"
        return failure_message(error)

    async def _worker_task(self, job_id: str, plan: ExecutionPlan, attempt: int,
                           timeout: timedelta) -> ActionOutcome:
        task: WorkerTaskInput = await workflow.execute_activity(
            "create_job_worker_task",
            RunActionInput(job_id=job_id, execution_id=plan.execution_id, owner_id=plan.owner_id,
                           action_type=plan.action_type, params=plan.params, attempt=attempt),
            result_type=WorkerTaskInput, start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY_POLICY)
        # The job's timeout covers the wait for a worker and the task's own run.
        task.timeout_seconds = plan.timeout_seconds
        task.wait_seconds = min(task.wait_seconds, float(plan.timeout_seconds))
        outcome: WorkerTaskResult = await workflow.execute_child_workflow(
            WorkerTaskWorkflow.run, task, id=f"worker-task-{task.task_id}")
        if outcome.status != "completed":
            raise ApplicationError(f"worker task {task.task_id} {outcome.status}: {outcome.error}",
                                   type="WorkerTaskFailed")
        return ActionOutcome(result={"task_id": task.task_id, "task_type": task.task_type,
                                     "result": outcome.result})

    async def _finish(
        self, job_id: str, plan: ExecutionPlan, attempts: int, outcome: ActionOutcome | None, errors: list[str],
        status: str | None = None,
    ) -> JobRunResult:
        status = status or ("completed" if outcome is not None else "failed")
        error = None
        if outcome is None:
            error = errors[-1] if errors else "no attempt ran"
        await workflow.execute_activity(
            "finish_job_execution",
            FinishExecutionInput(
                job_id=job_id, execution_id=plan.execution_id, status=status, attempts=attempts,
                result=outcome.result if outcome else {"errors": errors}, error=error,
                cpu_seconds=outcome.cpu_seconds if outcome else None,
                peak_memory_bytes=outcome.peak_memory_bytes if outcome else None),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=BOOKKEEPING_RETRY_POLICY)
        return JobRunResult(execution_id=plan.execution_id, status=status, attempts=attempts,
                            result=outcome.result if outcome else None, error=error, errors=errors)
