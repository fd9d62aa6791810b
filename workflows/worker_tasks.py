"""A task for worker agents, routed by Temporal to a worker with its capability; and the health check."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from workflows.common import BOOKKEEPING_RETRY_POLICY, BOOKKEEPING_TIMEOUT, failure_message
    from workflows.worker_task_types import (
        NON_RETRYABLE_TASK_ERRORS,
        FinishTaskInput,
        HealthCheckResult,
        RunTaskInput,
        TaskOutcome,
        WorkerTaskInput,
        WorkerTaskResult,
    )

# A task's handler heartbeats every quarter second; a worker that died is noticed within this.
TASK_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Temporal's task priorities run from 1 (highest) to 5; the API's 1 to 10 map onto them in pairs.
PRIORITY_LEVELS = 5


def temporal_priority(priority: int) -> Priority:
    return Priority(priority_key=min(max((priority + 1) // 2, 1), PRIORITY_LEVELS))


@workflow.defn(name="WorkerTaskWorkflow")
class WorkerTaskWorkflow:
    @workflow.run
    async def run(self, task: WorkerTaskInput) -> WorkerTaskResult:
        # Each attempt records its own number in the task's row, so the workflow does not count them.
        attempts = 0
        try:
            outcome: TaskOutcome = await workflow.execute_activity(
                "run_worker_task", RunTaskInput(task_id=task.task_id, task_type=task.task_type),
                result_type=TaskOutcome, task_queue=task.queue,
                schedule_to_start_timeout=timedelta(seconds=task.wait_seconds),
                start_to_close_timeout=timedelta(seconds=task.timeout_seconds),
                heartbeat_timeout=TASK_HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                                         maximum_attempts=task.max_retries + 1,
                                         non_retryable_error_types=NON_RETRYABLE_TASK_ERRORS),
                priority=temporal_priority(task.priority),
            )
        except ActivityError as error:
            if not isinstance(error.cause, CancelledError):
                return await self._finish(task, "failed", None, self._describe(task, error), attempts)
            # The activity stopped at its heartbeat after the workflow was cancelled.
            await self._finish(task, "cancelled", None, "the task was cancelled", attempts)
            raise asyncio.CancelledError() from error
        except asyncio.CancelledError:
            await self._finish(task, "cancelled", None, "the task was cancelled", attempts)
            raise
        return await self._finish(task, "completed", outcome.result, None, attempts)

    @staticmethod
    def _describe(task: WorkerTaskInput, error: ActivityError) -> str:
        cause = error.cause
        if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
            return (f"no worker with the capability {task.task_type} took the task within "
                    f"{task.wait_seconds:.0f} s; start one with `python temporal-worker.py --capabilities "
                    f"{task.task_type}`")
        if isinstance(cause, TimeoutError) and cause.type == TimeoutType.START_TO_CLOSE:
            return f"the task ran past its timeout of {task.timeout_seconds} s"
        return failure_message(error)

    async def _finish(self, task: WorkerTaskInput, status: str, result: dict[str, object] | None, error: str | None,
                      attempts: int) -> WorkerTaskResult:
        await workflow.execute_activity(
            "finish_worker_task",
            FinishTaskInput(task_id=task.task_id, status=status, attempts=attempts, result=result, error=error),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT, retry_policy=BOOKKEEPING_RETRY_POLICY)
        return WorkerTaskResult(task_id=task.task_id, status=status, result=result, error=error)


@workflow.defn(name="WorkerHealthWorkflow")
class WorkerHealthWorkflow:
    @workflow.run
    async def run(self) -> HealthCheckResult:
        result: HealthCheckResult = await workflow.execute_activity(
            "check_worker_health", result_type=HealthCheckResult, start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3))
        return result
