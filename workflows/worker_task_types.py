"""Inputs and results of the worker task and worker health workflows.

Add fields with defaults only, so runs in flight keep decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Failure types that no retry can fix.
NON_RETRYABLE_TASK_ERRORS = ["TaskRejected", "UnknownTaskType", "TaskNotFound"]


@dataclass
class WorkerTaskInput:
    task_id: str
    task_type: str
    queue: str
    priority: int
    max_retries: int
    timeout_seconds: int
    wait_seconds: float


@dataclass
class RunTaskInput:
    task_id: str
    task_type: str


@dataclass
class TaskOutcome:
    result: dict[str, Any]


@dataclass
class FinishTaskInput:
    task_id: str
    status: str
    attempts: int
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class WorkerTaskResult:
    task_id: str
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class HealthCheckResult:
    marked_unhealthy: list[str] = field(default_factory=list)
    pollers: dict[str, int] = field(default_factory=dict)
