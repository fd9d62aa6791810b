"""Inputs and results of the UPEE workflow and its activities.

Only ids and small parameters cross the workflow boundary: message content
stays in PostgreSQL. Add fields with defaults only, so runs in flight keep
decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.worker_task_types import WorkerTaskInput

PHASES = ("understand", "plan", "execute", "evaluate")


@dataclass
class UPEEInput:
    request_id: str
    conversation_id: str
    user_message_id: str
    assistant_message_id: str
    model: str
    temperature: float = 0.7
    quality_threshold: float = 0.5
    max_refinements: int = 1
    history_messages: int = 20
    # Whether earlier turns of the conversation were running when this one arrived.
    wait_for_earlier_turns: bool = True
    # How long Execute waits for the worker tasks that Plan chose.
    worker_task_timeout_seconds: float = 60.0


@dataclass
class WaitInput:
    request_id: str
    conversation_id: str


@dataclass
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class PhaseInput:
    request_id: str
    conversation_id: str
    model: str
    temperature: float
    history_messages: int
    assistant_message_id: str = ""
    # 0 for the first answer, n for the n-th refinement.
    refinement: int = 0


@dataclass
class UnderstandResult:
    intent: str
    needs_workers: bool
    duration_ms: int
    usage: TokenUsage


@dataclass
class PlanResult:
    step_count: int
    worker_task_count: int
    duration_ms: int
    usage: TokenUsage
    # The tasks Plan chose, stored as pending rows, for the workflow to start.
    worker_tasks: list[WorkerTaskInput] = field(default_factory=list)


@dataclass
class ExecuteResult:
    output_tokens: int
    first_token_ms: int | None
    duration_ms: int
    usage: TokenUsage


@dataclass
class EvaluateResult:
    score: float
    duration_ms: int
    usage: TokenUsage


@dataclass
class FinishInput:
    request_id: str
    conversation_id: str
    assistant_message_id: str
    quality_score: float
    refinements: int
    usage: TokenUsage


@dataclass
class FailInput:
    request_id: str
    assistant_message_id: str
    error: str
    error_type: str
    conversation_id: str = ""


@dataclass
class PhaseTiming:
    phase: str
    refinement: int
    duration_ms: int


@dataclass
class UPEEProgress:
    """The `progress` query result: the current phase and what is known so far."""

    request_id: str
    status: str = "running"
    phase: str | None = None
    refinements: int = 0
    intent: str | None = None
    quality_score: float | None = None
    error: str | None = None
    timings: list[PhaseTiming] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)


@dataclass
class UPEEResult:
    request_id: str
    assistant_message_id: str
    quality_score: float
    refinements: int
    usage: TokenUsage
