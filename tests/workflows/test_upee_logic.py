"""The UPEE workflow's control flow, with activity doubles on the time-skipping test server.

The doubles stand in for the phases by activity name, so these tests cover
only the workflow's decisions: refinement bounds, retries and failure handling.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.upee import UPEEWorkflow
from workflows.upee_types import (
    EvaluateResult,
    ExecuteResult,
    FailInput,
    FinishInput,
    PhaseInput,
    PlanResult,
    TokenUsage,
    UnderstandResult,
    UPEEInput,
    WaitInput,
)

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


class PhaseDoubles:
    def __init__(self, scores: list[float], execute_failures: list[ApplicationError] | None = None) -> None:
        self.scores = scores
        self.execute_failures = execute_failures or []
        self.calls: list[str] = []
        self.finished: FinishInput | None = None
        self.failed: FailInput | None = None

    def activities(self) -> list[object]:
        @activity.defn(name="upee_wait_turn")
        async def wait_turn(data: WaitInput) -> None:
            self.calls.append("wait_turn")
        @activity.defn(name="upee_understand")
        async def understand(data: PhaseInput) -> UnderstandResult:
            self.calls.append("understand")
            return UnderstandResult(intent="question", needs_workers=False, duration_ms=1, usage=TokenUsage(2, 1))

        @activity.defn(name="upee_plan")
        async def plan(data: PhaseInput) -> PlanResult:
            self.calls.append("plan")
            return PlanResult(step_count=1, worker_task_count=0, duration_ms=1, usage=TokenUsage(2, 1))

        @activity.defn(name="upee_execute")
        async def execute(data: PhaseInput) -> ExecuteResult:
            self.calls.append(f"execute_{data.refinement}")
            if self.execute_failures:
                raise self.execute_failures.pop(0)
            return ExecuteResult(output_tokens=3, first_token_ms=1, duration_ms=1, usage=TokenUsage(2, 3))

        @activity.defn(name="upee_evaluate")
        async def evaluate(data: PhaseInput) -> EvaluateResult:
            self.calls.append(f"evaluate_{data.refinement}")
            return EvaluateResult(score=self.scores.pop(0), duration_ms=1, usage=TokenUsage(2, 1))

        @activity.defn(name="upee_finish")
        async def finish(data: FinishInput) -> None:
            self.finished = data

        @activity.defn(name="upee_fail")
        async def fail(data: FailInput) -> None:
            self.failed = data

        return [wait_turn, understand, plan, execute, evaluate, finish, fail]


@pytest.fixture(scope="module")
async def environment() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(TEST_SERVER)) as env:
        yield env


def turn_input(max_refinements: int = 1) -> UPEEInput:
    return UPEEInput(request_id=str(uuid.uuid4()), conversation_id=str(uuid.uuid4()),
                     user_message_id=str(uuid.uuid4()), assistant_message_id=str(uuid.uuid4()),
                     model="scripted", quality_threshold=0.5, max_refinements=max_refinements,
                     wait_for_earlier_turns=True)


async def run_turn(environment: WorkflowEnvironment, doubles: PhaseDoubles, data: UPEEInput):  # type: ignore[no-untyped-def]
    task_queue = f"logic-{uuid.uuid4().hex[:8]}"
    async with Worker(environment.client, task_queue=task_queue, workflows=[UPEEWorkflow],
                      activities=doubles.activities()):
        return await environment.client.execute_workflow(
            UPEEWorkflow.run, data, id=f"upee-{data.request_id}", task_queue=task_queue)


async def test_refinements_stop_at_limit(environment: WorkflowEnvironment) -> None:
    doubles = PhaseDoubles(scores=[0.1, 0.2, 0.3])

    result = await run_turn(environment, doubles, turn_input(max_refinements=2))

    assert doubles.calls == ["wait_turn", "understand", "plan", "execute_0", "evaluate_0", "execute_1", "evaluate_1",
                             "execute_2", "evaluate_2"]
    assert result.refinements == 2
    assert result.quality_score == 0.3
    assert doubles.finished is not None
    assert doubles.finished.refinements == 2


async def test_good_score_skips_refinement(environment: WorkflowEnvironment) -> None:
    doubles = PhaseDoubles(scores=[0.9])

    result = await run_turn(environment, doubles, turn_input(max_refinements=3))

    assert result.refinements == 0
    assert result.usage == TokenUsage(input_tokens=8, output_tokens=6)


async def test_retryable_failures_are_retried(environment: WorkflowEnvironment) -> None:
    outage = [ApplicationError("HTTP 503", type="ProviderError") for _ in range(3)]
    doubles = PhaseDoubles(scores=[0.9], execute_failures=outage)

    result = await run_turn(environment, doubles, turn_input())

    assert doubles.calls.count("execute_0") == 4
    assert result.quality_score == 0.9


async def test_final_failure_records_error(environment: WorkflowEnvironment) -> None:
    refused = ApplicationError("HTTP 400: bad request", type="ProviderError", non_retryable=True)
    doubles = PhaseDoubles(scores=[], execute_failures=[refused])

    with pytest.raises(WorkflowFailureError) as caught:
        await run_turn(environment, doubles, turn_input())

    assert doubles.calls.count("execute_0") == 1
    assert doubles.failed is not None
    assert "HTTP 400" in doubles.failed.error
    assert doubles.failed.error_type == "ProviderError"
    assert doubles.finished is None
    assert isinstance(caught.value.cause, ApplicationError)
    assert caught.value.cause.type == "TurnFailedError"
