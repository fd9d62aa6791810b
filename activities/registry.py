"""The workflows and activities that the core task queue serves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.jobs import JobActivities
from activities.upee import UPEEActivities
from llm.registry import ProviderRegistry
from workflows.jobs import JobWorkflow
from workflows.upee import UPEEWorkflow

WORKFLOWS: list[type] = [UPEEWorkflow, JobWorkflow]
# Activities heartbeat every 0.25 s; sending at most every 0.5 s lets a cancel arrive within about a second.
MAX_HEARTBEAT_THROTTLE = timedelta(milliseconds=500)


def build_activities(
    session_factory: async_sessionmaker[AsyncSession], providers: ProviderRegistry
) -> list[Callable[..., Any]]:
    upee = UPEEActivities(session_factory, providers)
    jobs = JobActivities(session_factory, providers.settings)
    return [upee.wait_turn, upee.understand, upee.plan, upee.execute, upee.evaluate, upee.finish, upee.fail,
            upee.cancel, jobs.start_execution, jobs.prepare_chat_turn, jobs.run_action, jobs.finish_execution]
