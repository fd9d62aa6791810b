"""The workflows and activities that the core task queue serves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.jobs import JobActivities
from activities.task_types import TASK_TYPES
from activities.upee import UPEEActivities
from activities.workers import TaskActivities, WorkerAdminActivities, WorkerIdentity
from llm.registry import ProviderRegistry
from settings import Settings
from workflows.jobs import JobWorkflow
from workflows.upee import UPEEWorkflow
from workflows.worker_tasks import WorkerHealthWorkflow, WorkerTaskWorkflow

WORKFLOWS: list[type] = [UPEEWorkflow, JobWorkflow, WorkerTaskWorkflow, WorkerHealthWorkflow]
GRACEFUL_SHUTDOWN = timedelta(seconds=30)
# Activities heartbeat every 0.25 s; sending at most every 0.5 s lets a cancel arrive within about a second.
MAX_HEARTBEAT_THROTTLE = timedelta(milliseconds=500)


def build_activities(
    session_factory: async_sessionmaker[AsyncSession], providers: ProviderRegistry
) -> list[Callable[..., Any]]:
    upee = UPEEActivities(session_factory, providers)
    jobs = JobActivities(session_factory, providers.settings)
    admin = WorkerAdminActivities(session_factory, providers.settings)
    return [upee.wait_turn, upee.understand, upee.plan, upee.execute, upee.evaluate, upee.finish, upee.fail,
            upee.cancel, jobs.start_execution, jobs.prepare_chat_turn, jobs.run_action, jobs.finish_execution,
            jobs.create_worker_task,
            admin.finish_task, admin.check_health]


def resolve_capabilities(settings: Settings, requested: list[str] | None) -> list[str]:
    """Return the capabilities to serve: those requested, else every registered task type."""
    capabilities = sorted(TASK_TYPES) if requested is None else [c for c in requested if c]
    unknown = sorted(set(capabilities) - set(TASK_TYPES))
    if unknown:
        raise ValueError(f"unknown capabilities: {', '.join(unknown)}; known: {', '.join(sorted(TASK_TYPES))}")
    return capabilities


def build_capability_workers(
    client: Client, settings: Settings, session_factory: async_sessionmaker[AsyncSession],
    providers: ProviderRegistry, identity: WorkerIdentity, capabilities: list[str],
) -> list[Worker]:
    """Return one Temporal worker per capability, each polling that capability's task queue."""
    tasks = TaskActivities(session_factory, settings, providers, identity)
    return [
        Worker(client, task_queue=settings.capability_queue(capability), activities=[tasks.run_task],
               max_concurrent_activities=settings.worker_max_concurrent_tasks,
               max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE, graceful_shutdown_timeout=GRACEFUL_SHUTDOWN)
        for capability in capabilities
    ]
