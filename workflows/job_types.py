"""Inputs and results of the job workflow and its activities.

Only ids and small parameters cross the workflow boundary. Add fields with
defaults only, so runs in flight keep decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHAT_ACTION = "chat"
WORKER_TASK_ACTION = "worker_task"


@dataclass
class JobRunInput:
    job_id: str


@dataclass
class StartExecutionInput:
    job_id: str
    workflow_id: str
    run_id: str


@dataclass
class ExecutionPlan:
    """The action, limits and owner of one run, read from the job's row when the run starts."""

    execution_id: str
    action_type: str
    params: dict[str, Any]
    owner_id: str
    max_retries: int
    timeout_seconds: int
    # Empty when the job was deleted or disabled before this run started: nothing runs.
    skip_reason: str = ""


@dataclass
class RunActionInput:
    job_id: str
    execution_id: str
    owner_id: str
    action_type: str
    params: dict[str, Any]
    attempt: int


@dataclass
class ActionOutcome:
    result: dict[str, Any]
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


@dataclass
class FinishExecutionInput:
    job_id: str
    execution_id: str
    status: str
    attempts: int
    result: dict[str, Any] | None = None
    error: str | None = None
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


@dataclass
class JobRunResult:
    execution_id: str
    status: str
    attempts: int
    result: dict[str, Any] | None = None
    error: str | None = None
    errors: list[str] = field(default_factory=list)
