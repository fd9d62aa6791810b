"""The UPEE chat turn: Understand, Plan, Execute, Evaluate, refined while the score is low."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType, ParentClosePolicy
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from workflows.common import BOOKKEEPING_RETRY_POLICY, BOOKKEEPING_TIMEOUT
    from workflows.worker_task_types import WorkerTaskInput
    from workflows.worker_tasks import WorkerTaskWorkflow
    from workflows.upee_types import (
        EvaluateResult,
        ExecuteResult,
        FailInput,
        FinishInput,
        PhaseInput,
        PhaseTiming,
        PlanResult,
        TokenUsage,
        UnderstandResult,
        UPEEInput,
        UPEEProgress,
        UPEEResult,
        WaitInput,
    )

# Structured phases are short model calls; the window covers a slow CPU-only model.
STRUCTURED_PHASE_TIMEOUT = timedelta(minutes=2)
# Execute streams a whole answer, so its window is longer.
EXECUTE_TIMEOUT = timedelta(minutes=5)
# Every phase heartbeats four times a second, so a worker that died is noticed
# within this timeout and its activity retried elsewhere, not after the whole window.
PHASE_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# A turn queued behind others in its conversation waits at most this long in all.
QUEUE_TIMEOUT = timedelta(minutes=30)

# Provider outages are usually short; five attempts over about a minute.
PHASE_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=["UnknownModelError"],
)


def _reason(error: ActivityError) -> str:
    """Return the innermost failure's own message, without the wrappers' prefixes."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause) if cause is not None else str(error)


@workflow.defn(name="UPEEWorkflow")
class UPEEWorkflow:
    def __init__(self) -> None:
        self._progress: UPEEProgress | None = None

    @workflow.query(name="progress")
    def progress(self) -> UPEEProgress | None:
        return self._progress

    @workflow.run
    async def run(self, data: UPEEInput) -> UPEEResult:
        self._progress = UPEEProgress(request_id=data.request_id)
        try:
            result = await self._run_phases(data)
        except asyncio.CancelledError:
            await self._cancel(data)
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                await self._cancel(data)
                raise asyncio.CancelledError from error
            await self._fail(data, error)
            raise ApplicationError(_reason(error), type="TurnFailedError", non_retryable=True) from error
        self._progress.status = "completed"
        self._progress.phase = None
        return result

    async def _run_phases(self, data: UPEEInput) -> UPEEResult:
        assert self._progress is not None
        if data.wait_for_earlier_turns:
            self._progress.phase = "queued"
            await workflow.execute_activity(
                "upee_wait_turn",
                WaitInput(request_id=data.request_id, conversation_id=data.conversation_id),
                start_to_close_timeout=QUEUE_TIMEOUT,
                heartbeat_timeout=PHASE_HEARTBEAT_TIMEOUT,
                retry_policy=PHASE_RETRY_POLICY,
            )
        understood: UnderstandResult = await self._phase("understand", "upee_understand", data, 0)
        assert self._progress is not None
        self._progress.intent = understood.intent
        planned: PlanResult = await self._phase("plan", "upee_plan", data, 0)
        if planned.worker_tasks:
            await self._run_worker_tasks(planned.worker_tasks, data.worker_task_timeout_seconds)

        refinement = 0
        while True:
            await self._phase("execute", "upee_execute", data, refinement)
            evaluated: EvaluateResult = await self._phase("evaluate", "upee_evaluate", data, refinement)
            self._progress.quality_score = evaluated.score
            if evaluated.score >= data.quality_threshold or refinement >= data.max_refinements:
                break
            refinement += 1
            self._progress.refinements = refinement

        self._progress.phase = "finish"
        await workflow.execute_activity(
            "upee_finish",
            FinishInput(request_id=data.request_id, conversation_id=data.conversation_id,
                        assistant_message_id=data.assistant_message_id, quality_score=evaluated.score,
                        refinements=refinement, usage=self._progress.usage),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY_POLICY,
        )
        return UPEEResult(request_id=data.request_id, assistant_message_id=data.assistant_message_id,
                          quality_score=evaluated.score, refinements=refinement, usage=self._progress.usage)

    async def _run_worker_tasks(self, tasks: list[WorkerTaskInput], timeout_seconds: float) -> None:
        """Run Plan's worker tasks in parallel, each routed to a worker with its capability, for at most the timeout.

        Tasks still running after it go on; they are cancelled when the turn ends. Execute reads
        whatever results exist by then.
        """
        assert self._progress is not None
        self._progress.phase = "worker_tasks"
        children = [
            await workflow.start_child_workflow(
                WorkerTaskWorkflow.run, task, id=f"worker-task-{task.task_id}",
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL)
            for task in tasks
        ]
        everything = asyncio.gather(*children, return_exceptions=True)
        try:
            await asyncio.wait_for(asyncio.shield(everything), timeout=timeout_seconds)
        except TimeoutError:
            workflow.logger.info("worker tasks of %s still running after %.0f s; the reply goes on without them",
                                 workflow.info().workflow_id, timeout_seconds)

    async def _phase(self, phase: str, activity_name: str, data: UPEEInput, refinement: int):  # type: ignore[no-untyped-def]
        assert self._progress is not None
        self._progress.phase = phase
        result_types = {"upee_understand": UnderstandResult, "upee_plan": PlanResult,
                        "upee_execute": ExecuteResult, "upee_evaluate": EvaluateResult}
        is_execute = activity_name == "upee_execute"
        result = await workflow.execute_activity(
            activity_name,
            PhaseInput(request_id=data.request_id, conversation_id=data.conversation_id, model=data.model,
                       temperature=data.temperature, history_messages=data.history_messages,
                       assistant_message_id=data.assistant_message_id, refinement=refinement),
            result_type=result_types[activity_name],
            start_to_close_timeout=EXECUTE_TIMEOUT if is_execute else STRUCTURED_PHASE_TIMEOUT,
            heartbeat_timeout=PHASE_HEARTBEAT_TIMEOUT,
            retry_policy=PHASE_RETRY_POLICY,
            # Execute saves the partial answer when cancelled, so the workflow waits for it to do so.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED if is_execute
            else ActivityCancellationType.TRY_CANCEL,
        )
        self._progress.timings.append(PhaseTiming(phase=phase, refinement=refinement, duration_ms=result.duration_ms))
        self._progress.usage = TokenUsage(
            input_tokens=self._progress.usage.input_tokens + result.usage.input_tokens,
            output_tokens=self._progress.usage.output_tokens + result.usage.output_tokens,
        )
        return result

    async def _cancel(self, data: UPEEInput) -> None:
        assert self._progress is not None
        workflow.logger.info("chat turn %s cancelled in %s", data.request_id, self._progress.phase)
        self._progress.status = "cancelled"
        await workflow.execute_activity(
            "upee_cancel",
            FailInput(request_id=data.request_id, assistant_message_id=data.assistant_message_id,
                      error="cancelled by request", error_type="Cancelled", conversation_id=data.conversation_id),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY_POLICY,
        )

    async def _fail(self, data: UPEEInput, error: ActivityError) -> None:
        assert self._progress is not None
        cause = error.cause
        message = _reason(error)
        error_type = cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__
        self._progress.status = "failed"
        self._progress.error = message[:500]
        workflow.logger.warning("chat turn %s failed in %s: %s", data.request_id, self._progress.phase, message)
        await workflow.execute_activity(
            "upee_fail",
            FailInput(request_id=data.request_id, assistant_message_id=data.assistant_message_id,
                      error=message, error_type=error_type or "Error", conversation_id=data.conversation_id),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY_POLICY,
        )
