"""Activities of the UPEE chat turn: one per phase, plus finishing and failing the turn.

Each phase loads what it needs from PostgreSQL, calls the model, stores its
result in `upee_sessions.phases_data` with one `flex_events` row, and returns
only small control values to the workflow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.prompts import (
    PlannedTask,
    fit_history,
    Evaluation,
    Plan,
    Understanding,
    answer_messages,
    evaluate_messages,
    plan_messages,
    understand_messages,
)
from activities.streaming import ContentRelay, heartbeating, publish
from activities.task_types import TASK_TYPES
from db.models import Conversation, WorkerTask
from db import chat
from db.run_events import append_event, delete_events
from llm.budget import PROMPT_OVERHEAD_TOKENS, STRUCTURED_MAX_TOKENS, answer_max_tokens, estimate_tokens
from llm.provider import ModelT, complete_structured
from llm.registry import ProviderRegistry, UnknownModelError
from llm.types import (
    ChatMessage,
    CompletionRequest,
    ProviderError,
    StreamEnd,
    StructuredOutputError,
    TextDelta,
    Usage,
)
from workflows.worker_task_types import WorkerTaskInput
from workflows.upee_types import (
    EvaluateResult,
    ExecuteResult,
    FailInput,
    FinishInput,
    PhaseInput,
    PlanResult,
    TokenUsage,
    UnderstandResult,
    WaitInput,
)

logger = logging.getLogger(__name__)

SOURCE = "upee"
# Plan may choose a few worker tasks, because more would make the reply wait on all of them.
MAX_PLANNED_TASKS = 4
PLANNED_TASK_PRIORITY = 3
# How much of each task's result the answer prompt carries.
TASK_RESULT_CHARS = 2000


def task_catalog() -> str:
    """Describe the worker task types for the Plan prompt: name, purpose and payload fields."""
    lines = []
    for name in sorted(TASK_TYPES):
        schema = TASK_TYPES[name].params.model_json_schema()
        required = set(schema.get("required", []))
        fields = ", ".join(f"{field}{'' if field in required else '?'}" for field in schema.get("properties", {}))
        lines.append(f"- {name}: {TASK_TYPES[name].description}. Payload: {{{fields}}}")
    return "\n".join(lines)
# How often a queued turn checks whether the turns before it have ended.
TURN_POLL_SECONDS = 0.2
# Used when a run names a model that a changed configuration no longer lists.
DEFAULT_CONTEXT_WINDOW = 8192


def _to_activity_error(error: ProviderError | UnknownModelError) -> ApplicationError:
    """Map a provider failure to Temporal's retry semantics; a 429 delay is honoured."""
    if isinstance(error, UnknownModelError):
        return ApplicationError(str(error), type="UnknownModelError", non_retryable=True)
    delay = timedelta(seconds=error.retry_after) if error.retry_after is not None else None
    return ApplicationError(
        str(error), type=type(error).__name__, non_retryable=not error.retryable, next_retry_delay=delay
    )


@contextmanager
def _turn_records(request_id: str) -> Iterator[None]:
    """Fail the activity for good when the turn's conversation was deleted while it ran.

    The cause is dropped on purpose: the database error's parameters hold message content.
    """
    try:
        yield
    except chat.SessionNotFoundError:
        raise _deleted(request_id) from None
    except IntegrityError as error:
        if "foreign key" not in str(error.orig).lower():
            raise
        raise _deleted(request_id) from None


def _deleted(request_id: str) -> ApplicationError:
    logger.info("conversation of request %s was deleted during the turn", request_id)
    return ApplicationError("the conversation was deleted during the turn", type="ConversationDeletedError",
                            non_retryable=True)


def _usage(usage: Usage) -> TokenUsage:
    return TokenUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class UPEEActivities:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], providers: ProviderRegistry) -> None:
        self.session_factory = session_factory
        self.providers = providers

    def _context_window(self, model: str) -> int:
        config = self.providers.settings.model_by_name(model)
        return config.context_window if config is not None else DEFAULT_CONTEXT_WINDOW

    async def _history(self, data: PhaseInput, reserved_tokens: int) -> list[chat.HistoryMessage]:
        """Load the recent messages that fit the model's context once `reserved_tokens` are set aside."""
        exclude = uuid.UUID(data.assistant_message_id) if data.assistant_message_id else None
        async with self.session_factory() as session:
            history = await chat.load_history(
                session, uuid.UUID(data.conversation_id), data.history_messages,
                request_id=uuid.UUID(data.request_id), exclude_message_id=exclude)
        budget = self._context_window(data.model) - reserved_tokens - PROMPT_OVERHEAD_TOKENS
        return fit_history(history, budget)

    async def _phases(self, request_id: str) -> dict[str, Any]:
        with _turn_records(request_id):
            async with self.session_factory() as session:
                return await chat.get_phases_data(session, uuid.UUID(request_id))

    async def _record(self, data: PhaseInput, phase: str, record: dict[str, Any]) -> None:
        key = phase if phase in ("understand", "plan") else f"{phase}_{data.refinement}"
        record = {"phase": phase, "refinement": data.refinement, "attempt": activity.info().attempt, **record}
        with _turn_records(data.request_id):
            async with self.session_factory.begin() as session:
                await chat.record_phase(session, uuid.UUID(data.request_id), key, record, source=SOURCE)
                await append_event(session, uuid.UUID(data.request_id), "thinking",
                                   {"phase": phase, "status": "completed", "refinement": data.refinement,
                                    "duration_ms": record["duration_ms"], "summary": record.get("summary")})

    async def _answer_text(self, data: PhaseInput) -> str:
        async with self.session_factory() as session:
            return await chat.get_message_content(session, uuid.UUID(data.assistant_message_id)) or ""

    async def _announce(self, data: PhaseInput, phase: str) -> None:
        await publish(self.session_factory, uuid.UUID(data.request_id), "thinking",
                      {"phase": phase, "status": "started", "refinement": data.refinement})

    async def _ask_structured(
        self, data: PhaseInput, phase: str, messages: list[ChatMessage], model_type: type[ModelT], fallback: ModelT
    ) -> tuple[ModelT, Usage, str | None]:
        """Call the model for `model_type`; on an answer that misses the schema, return `fallback` and the error.

        A small model may not follow the schema, and the turn goes on with a neutral result
        rather than failing.
        """
        try:
            async with heartbeating():
                result, usage = await complete_structured(
                    self.providers.get(data.model), messages, model_type,
                    max_tokens=STRUCTURED_MAX_TOKENS, temperature=0.0,
                )
        except StructuredOutputError as error:
            logger.warning("%s used its fallback for request %s: %s", phase, data.request_id, error)
            return fallback, Usage(), str(error)[:300]
        except (ProviderError, UnknownModelError) as error:
            raise _to_activity_error(error) from error
        return result, usage, None

    @activity.defn(name="upee_wait_turn")
    async def wait_turn(self, data: WaitInput) -> None:
        """Wait until every earlier turn of the conversation has ended, so turns run in arrival order."""
        request_id = uuid.UUID(data.request_id)
        announced = False
        async with heartbeating():
            while True:
                async with self.session_factory() as session:
                    running = await chat.running_turns(session, uuid.UUID(data.conversation_id))
                earlier = running[:running.index(request_id)] if request_id in running else []
                earlier = [other for other in earlier if not await self._workflow_closed(other)]
                if not earlier:
                    return
                if not announced:
                    await publish(self.session_factory, request_id, "thinking",
                                  {"phase": "queued", "status": "started", "refinement": 0,
                                   "waiting_for": [str(other) for other in earlier]})
                    announced = True
                await asyncio.sleep(TURN_POLL_SECONDS)

    async def _workflow_closed(self, request_id: uuid.UUID) -> bool:
        """Tell whether an earlier turn's workflow has ended without updating its session (terminated, say)."""
        try:
            description = await activity.client().get_workflow_handle(f"upee-{request_id}").describe()
        except RPCError:
            return True
        return description.status != WorkflowExecutionStatus.RUNNING

    @activity.defn(name="upee_understand")
    async def understand(self, data: PhaseInput) -> UnderstandResult:
        """Classify the request: intent, entities, and whether worker agents are needed."""
        started = time.monotonic()
        _, history = await asyncio.gather(self._announce(data, "understand"),
                                          self._history(data, STRUCTURED_MAX_TOKENS))
        understanding, usage, fallback = await self._ask_structured(
            data, "understand", understand_messages(history), Understanding, Understanding(intent="unknown"))

        duration = _elapsed_ms(started)
        await self._record(data, "understand", {
            "result": understanding.model_dump(), "duration_ms": duration, "usage": usage.as_dict(),
            "fallback": fallback, "summary": understanding.intent[:200],
        })
        return UnderstandResult(intent=understanding.intent[:200], needs_workers=understanding.needs_workers,
                                duration_ms=duration, usage=_usage(usage))

    @activity.defn(name="upee_plan")
    async def plan(self, data: PhaseInput) -> PlanResult:
        """Plan the steps of the answer from the conversation and the understanding."""
        started = time.monotonic()
        _, history, phases = await asyncio.gather(self._announce(data, "plan"),
                                                  self._history(data, STRUCTURED_MAX_TOKENS),
                                                  self._phases(data.request_id))
        understanding = phases.get("understand", {}).get("result", {})
        plan, usage, fallback = await self._ask_structured(
            data, "plan", plan_messages(history, understanding, task_catalog()), Plan, Plan(steps=[]))
        tasks, recorded = await self._store_planned_tasks(data, plan.worker_tasks)

        duration = _elapsed_ms(started)
        await self._record(data, "plan", {
            "result": plan.model_dump(), "duration_ms": duration, "usage": usage.as_dict(),
            "fallback": fallback, "summary": f"{len(plan.steps)} steps, {len(tasks)} worker tasks",
            "worker_tasks": recorded,
        })
        return PlanResult(step_count=len(plan.steps), worker_task_count=len(tasks), duration_ms=duration,
                          usage=_usage(usage), worker_tasks=tasks)

    async def _store_planned_tasks(
        self, data: PhaseInput, planned: list[PlannedTask]
    ) -> tuple[list[WorkerTaskInput], list[dict[str, Any]]]:
        """Store the valid planned tasks as pending rows; return their inputs and a record of every one."""
        settings = self.providers.settings
        inputs: list[WorkerTaskInput] = []
        recorded: list[dict[str, Any]] = []
        async with self.session_factory.begin() as session:
            owner = await session.scalar(select(Conversation.user_id).where(
                Conversation.id == uuid.UUID(data.conversation_id)))
            for index, item in enumerate(planned[:MAX_PLANNED_TASKS * 2]):
                task_type = TASK_TYPES.get(item.task_type)
                if task_type is None or len(inputs) >= MAX_PLANNED_TASKS:
                    reason = "unknown task type" if task_type is None else f"more than {MAX_PLANNED_TASKS} tasks"
                    recorded.append({"task_type": item.task_type, "status": "rejected", "reason": reason})
                    continue
                try:
                    payload = task_type.params.model_validate(item.payload).model_dump(mode="json", exclude_none=True)
                except ValidationError as error:
                    recorded.append({"task_type": item.task_type, "status": "rejected",
                                     "reason": f"invalid payload: {error.errors()[0]['msg']}"})
                    continue
                # Derived ids, so a retried Plan finds the rows it already wrote.
                task_id = uuid.uuid5(uuid.UUID(data.request_id), f"worker-task-{index}")
                task = await session.get(WorkerTask, task_id)
                if task is None:
                    task = WorkerTask(id=task_id, task_type=item.task_type, payload=payload, status="pending",
                                      priority=PLANNED_TASK_PRIORITY, max_retries=1, user_id=owner,
                                      timeout_seconds=settings.worker_task_default_timeout_seconds,
                                      origin={"source": "upee", "request_id": data.request_id})
                    session.add(task)
                inputs.append(WorkerTaskInput(
                    task_id=str(task_id), task_type=item.task_type, queue=settings.capability_queue(item.task_type),
                    priority=PLANNED_TASK_PRIORITY, max_retries=1,
                    timeout_seconds=settings.worker_task_default_timeout_seconds,
                    wait_seconds=settings.upee_worker_task_timeout_seconds))
                recorded.append({"id": str(task_id), "task_type": item.task_type, "status": "pending"})
        return inputs, recorded

    @activity.defn(name="upee_execute")
    async def execute(self, data: PhaseInput) -> ExecuteResult:
        """Generate the answer, streaming it to the turn's events, and store it as the assistant message."""
        started = time.monotonic()
        request_id = uuid.UUID(data.request_id)
        # Only the announcement writes; the request is built from reads, so the two can overlap.
        _, (request, task_outcomes) = await asyncio.gather(self._announce(data, "execute"),
                                                           self._answer_request(data))
        if activity.info().attempt > 1 or data.refinement > 0:
            # The answer streamed so far (by a failed attempt or before a refinement) is replaced.
            reason = "retry" if activity.info().attempt > 1 else "refinement"
            await publish(self.session_factory, request_id, "reset", {"answer": data.refinement, "reason": reason})

        relay = ContentRelay(self.session_factory, request_id, data.refinement)
        parts: list[str] = []
        usage, first_token_ms, deltas = Usage(), None, 0
        try:
            async with heartbeating():
                async for item in self.providers.get(data.model).stream(request):
                    if isinstance(item, TextDelta):
                        if first_token_ms is None:
                            first_token_ms = _elapsed_ms(started)
                        parts.append(item.text)
                        deltas += 1
                        relay.push(item.text)
                    elif isinstance(item, StreamEnd):
                        usage = item.usage
            await relay.close()
        except asyncio.CancelledError:
            # The turn was cancelled: the provider stream is closed by now; keep what was generated.
            await relay.close()
            await self._save_answer(data, "".join(parts), Usage(output_tokens=deltas), True, status="cancelled")
            raise
        except (ProviderError, UnknownModelError) as error:
            await relay.abort()
            raise _to_activity_error(error) from error
        except BaseException:
            await relay.abort()
            raise

        if not "".join(parts).strip():
            raise ApplicationError(f"{data.model} returned an empty answer", type="EmptyAnswerError")

        estimated = usage.output_tokens == 0 and deltas > 0
        if estimated:
            # Some OpenAI-compatible servers send no usage when streaming; count one token per delta.
            usage.output_tokens = deltas
        duration = _elapsed_ms(started)
        await self._save_answer(data, "".join(parts), usage, estimated)
        await self._record(data, "execute", {
            "duration_ms": duration, "first_token_ms": first_token_ms, "usage": usage.as_dict(),
            "usage_estimated": estimated, "summary": f"{usage.output_tokens} tokens",
            "worker_tasks": task_outcomes,
        })
        return ExecuteResult(output_tokens=usage.output_tokens, first_token_ms=first_token_ms,
                             duration_ms=duration, usage=_usage(usage))

    async def _task_results(self, data: PhaseInput, phases: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """Return the results of Plan's worker tasks as prompt lines, and their outcome for phases_data."""
        ids = [uuid.UUID(item["id"]) for item in phases.get("plan", {}).get("worker_tasks", []) if "id" in item]
        if not ids:
            return [], []
        async with self.session_factory() as session:
            tasks = {task.id: task for task in await session.scalars(select(WorkerTask).where(WorkerTask.id.in_(ids)))}
        lines, outcomes = [], []
        for task_id in ids:
            task = tasks.get(task_id)
            if task is None:
                continue
            outcomes.append({"id": str(task.id), "task_type": task.task_type, "status": task.status,
                             "error": task.error_message})
            if task.status == "completed":
                lines.append(f"- {task.task_type}: {json.dumps(task.result)[:TASK_RESULT_CHARS]}")
            else:
                lines.append(f"- {task.task_type}: no result ({task.status}"
                             f"{': ' + task.error_message if task.error_message else ''})")
        return lines, outcomes

    async def _answer_request(self, data: PhaseInput) -> tuple[CompletionRequest, list[dict[str, Any]]]:
        """Return the answer's request, and the outcome of each worker task whose result it carries."""
        phases = await self._phases(data.request_id)
        steps = phases.get("plan", {}).get("result", {}).get("steps", [])
        task_lines, outcomes = await self._task_results(data, phases)
        previous = critique = None
        if data.refinement > 0:
            async with self.session_factory() as session:
                previous = await chat.get_message_content(session, uuid.UUID(data.assistant_message_id))
            critique = phases.get(f"evaluate_{data.refinement - 1}", {}).get("result", {}).get("reason")
        max_tokens = answer_max_tokens(self._context_window(data.model))
        reserved = (max_tokens + estimate_tokens(" ".join(steps)) + estimate_tokens(previous or "")
                    + estimate_tokens("\n".join(task_lines)))
        history = await self._history(data, reserved)
        return CompletionRequest(
            messages=answer_messages(history, steps, previous, critique, task_lines),
            max_tokens=max_tokens,
            temperature=data.temperature,
        ), outcomes

    async def _save_answer(
        self, data: PhaseInput, text: str, usage: Usage, estimated: bool, status: str = "streaming"
    ) -> None:
        with _turn_records(data.request_id):
            async with self.session_factory.begin() as session:
                await chat.upsert_assistant_message(
                    session,
                    message_id=uuid.UUID(data.assistant_message_id),
                    conversation_id=uuid.UUID(data.conversation_id),
                    request_id=uuid.UUID(data.request_id),
                    content=text,
                    status=status,
                    metadata={"model": data.model, "usage": usage.as_dict(), "usage_estimated": estimated,
                              "refinement": data.refinement},
                )

    @activity.defn(name="upee_evaluate")
    async def evaluate(self, data: PhaseInput) -> EvaluateResult:
        """Score the stored answer from 0 to 1."""
        started = time.monotonic()
        _, answer = await asyncio.gather(self._announce(data, "evaluate"), self._answer_text(data))
        history = await self._history(data, STRUCTURED_MAX_TOKENS + estimate_tokens(answer))
        # Without a usable score the answer is kept as it is rather than refined blindly.
        evaluation, usage, fallback = await self._ask_structured(
            data, "evaluate", evaluate_messages(history, answer), Evaluation,
            Evaluation(score=1.0, reason="no usable evaluation"))

        duration = _elapsed_ms(started)
        await self._record(data, "evaluate", {
            "result": evaluation.model_dump(), "duration_ms": duration, "usage": usage.as_dict(),
            "fallback": fallback, "summary": f"score {evaluation.score:.2f}",
        })
        return EvaluateResult(score=evaluation.score, duration_ms=duration, usage=_usage(usage))

    @activity.defn(name="upee_finish")
    async def finish(self, data: FinishInput) -> None:
        """Mark the answer completed, store the quality score and close the stream."""
        request_id = uuid.UUID(data.request_id)
        usage = {"input_tokens": data.usage.input_tokens, "output_tokens": data.usage.output_tokens}
        async with self.session_factory.begin() as session:
            await chat.set_message_status(session, uuid.UUID(data.assistant_message_id), "completed",
                                          {"quality_score": data.quality_score, "turn_usage": usage})
            await chat.set_quality_score(session, request_id, data.quality_score)
            await chat.set_session_status(session, request_id, "completed")
            await append_event(session, request_id, "complete", {
                "request_id": data.request_id, "conversation_id": data.conversation_id,
                "message_id": data.assistant_message_id, "quality_score": data.quality_score,
                "refinements": data.refinements, "usage": usage,
            })
            await append_event(session, request_id, "done", {})

    async def _store_failed_answer(self, session: AsyncSession, data: FailInput) -> None:
        """Mark the answer failed, or add an empty failed one, so the conversation shows the failure."""
        message_id = uuid.UUID(data.assistant_message_id)
        metadata = {"error": data.error[:1000], "error_type": data.error_type}
        if await chat.set_message_status(session, message_id, "failed", metadata):
            return
        if data.conversation_id:
            await chat.upsert_assistant_message(
                session, message_id=message_id, conversation_id=uuid.UUID(data.conversation_id),
                request_id=uuid.UUID(data.request_id), content="", status="failed", metadata=metadata)

    @activity.defn(name="upee_cancel")
    async def cancel(self, data: FailInput) -> None:
        """Mark the answer cancelled, keeping its partial text, and close the stream."""
        request_id = uuid.UUID(data.request_id)
        message_id = uuid.UUID(data.assistant_message_id)
        async with self.session_factory.begin() as session:
            found = await chat.set_message_status(session, message_id, "cancelled", {"cancel_reason": data.error})
            if not found and data.conversation_id:
                await chat.upsert_assistant_message(
                    session, message_id=message_id, conversation_id=uuid.UUID(data.conversation_id),
                    request_id=request_id, content="", status="cancelled", metadata={"cancel_reason": data.error})
            await chat.set_session_status(session, request_id, "cancelled")
            await append_event(session, request_id, "cancelled",
                               {"request_id": data.request_id, "message_id": data.assistant_message_id,
                                "reason": data.error})
            await append_event(session, request_id, "done", {})

    @activity.defn(name="upee_fail")
    async def fail(self, data: FailInput) -> None:
        """Mark the answer failed, if one was stored, and close the stream with an error event."""
        request_id = uuid.UUID(data.request_id)
        async with self.session_factory.begin() as session:
            if data.error_type == "ConversationDeletedError":
                # Text streamed after the deletion must not outlive the conversation.
                await delete_events(session, request_id)
            else:
                await self._store_failed_answer(session, data)
                await chat.set_session_status(session, request_id, "failed")
            await append_event(session, request_id, "error", {"message": data.error[:1000], "type": data.error_type})
            await append_event(session, request_id, "done", {})
