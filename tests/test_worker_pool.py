"""Two worker processes serving one capability: they share its tasks, and one killed mid-task loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import MAX_HEARTBEAT_THROTTLE, WORKFLOWS, build_activities
from api.deps import AppState
from api.schemas import TaskCreate
from api.worker_tasks import create_task
from db.models import WorkerInstance, WorkerTask
from llm.registry import ProviderRegistry
from settings import Settings
from tests.helpers import wait_for
from tests.support.webhook_server import WebhookServer, start_webhook_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def webhooks() -> Iterator[WebhookServer]:
    server = start_webhook_server()
    yield server
    server.stop()


def start_pool_worker(settings: Settings, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "PAF_TEMPORAL_ADDRESS": settings.temporal_address,
        "PAF_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "PAF_HTTP_ALLOW_PRIVATE_ADDRESSES": "true",
        "PAF_WORKER_HEARTBEAT_SECONDS": "1",
        # Two tasks at a time each, so twelve tasks cannot all fit in one worker.
        "PAF_WORKER_MAX_CONCURRENT_TASKS": "2",
    }
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "temporal-worker.py"), "--name", name, "--capabilities",
             "http_fetch", "--no-core"], env=env, stdout=output, stderr=subprocess.STDOUT)


@asynccontextmanager
async def pool(settings: Settings, temporal_client: Client, session_factory: async_sessionmaker[AsyncSession],
               tmp_path: Path) -> AsyncIterator[tuple[AppState, dict[str, subprocess.Popen[bytes]]]]:
    """Two http_fetch worker processes, and an in-process core worker, on task queues of their own."""
    pool_settings = settings.model_copy(update={"temporal_task_queue": f"pool-{uuid.uuid4().hex[:8]}",
                                                "worker_task_wait_seconds": 60.0})
    tag = pool_settings.temporal_task_queue
    processes = {name: start_pool_worker(pool_settings, name, tmp_path / f"{name}.log")
                 for name in (f"{tag}-a", f"{tag}-b")}
    providers = ProviderRegistry(pool_settings)
    core = Worker(temporal_client, task_queue=pool_settings.temporal_task_queue, workflows=WORKFLOWS,
                  activities=build_activities(session_factory, providers),
                  max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE)
    state = AppState(settings=pool_settings, session_factory=session_factory, temporal=temporal_client,
                     providers=providers, hub=None, jwt_secret="")  # type: ignore[arg-type]
    try:
        async with core:
            await wait_for(lambda: _registered(session_factory, list(processes)), timeout=60)
            yield state, processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            process.wait(timeout=40)
        await providers.close()


async def _registered(session_factory: async_sessionmaker[AsyncSession], names: list[str]) -> bool:
    async with session_factory() as session:
        rows = (await session.scalars(select(WorkerInstance).where(WorkerInstance.name.in_(names),
                                                                     WorkerInstance.status == "active"))).all()
    return len(rows) == len(names)


async def task_rows(session_factory: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> list[WorkerTask]:
    async with session_factory() as session:
        return list((await session.scalars(select(WorkerTask).where(WorkerTask.id.in_(ids)))).all())


async def all_ended(session_factory: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> list[WorkerTask] | None:
    rows = await task_rows(session_factory, ids)
    return rows if all(row.status in ("completed", "failed") for row in rows) else None


async def fetch(state: AppState, url: str) -> uuid.UUID:
    task = await create_task(state, TaskCreate(task_type="http_fetch", payload={"url": url}), None, {"source": "test"})
    return task.id


async def test_two_workers_share_a_capability(
    settings: Settings, temporal_client: Client, session_factory: async_sessionmaker[AsyncSession],
    webhooks: WebhookServer, tmp_path: Path,
) -> None:
    async with pool(settings, temporal_client, session_factory, tmp_path) as (state, processes):
        first_beats = await _workers(session_factory, list(processes))
        ids = list(await asyncio.gather(*(fetch(state, f"{webhooks.url}/share/slow/0.5") for _ in range(12))))
        rows = await wait_for(lambda: all_ended(session_factory, ids), timeout=60)
        await asyncio.sleep(1.5)  # at least one more heartbeat, sent every second here
        later_beats = await _workers(session_factory, list(processes))
    stopped = await _workers(session_factory, list(processes))

    assert {row.status for row in rows} == {"completed"}
    assert len({row.worker_id for row in rows}) == 2
    for name, worker in first_beats.items():
        assert worker.capabilities == ["http_fetch"]
        assert worker.metadata_["pid"] == processes[name].pid
        assert later_beats[name].last_heartbeat > worker.last_heartbeat
        assert stopped[name].status == "inactive"


async def _workers(session_factory: async_sessionmaker[AsyncSession], names: list[str]) -> dict[str, WorkerInstance]:
    async with session_factory() as session:
        rows = (await session.scalars(select(WorkerInstance).where(WorkerInstance.name.in_(names)))).all()
    return {row.name: row for row in rows}


async def test_killed_worker_task_completes_once_on_the_other(
    settings: Settings, temporal_client: Client, session_factory: async_sessionmaker[AsyncSession],
    webhooks: WebhookServer, tmp_path: Path,
) -> None:
    async with pool(settings, temporal_client, session_factory, tmp_path) as (state, processes):
        task_id = await fetch(state, f"{webhooks.url}/kill/slow/4")
        running = await wait_for(lambda: _running_on(session_factory, task_id), timeout=30)
        async with session_factory() as session:
            victim = await session.get(WorkerInstance, running.worker_id)
        assert victim is not None
        processes[victim.name].send_signal(signal.SIGKILL)
        processes[victim.name].wait(timeout=10)
        [row] = await wait_for(lambda: all_ended(session_factory, [task_id]), timeout=60)
        history = [event async for event in
                   temporal_client.get_workflow_handle(f"worker-task-{task_id}").fetch_history_events()]

    assert row.status == "completed"
    assert row.worker_id != victim.id
    assert row.retry_count == 1
    assert row.result is not None
    assert row.result["status_code"] == 200
    scheduled = {event.event_id: event.activity_task_scheduled_event_attributes.activity_type.name
                 for event in history if event.HasField("activity_task_scheduled_event_attributes")}
    task_completions = [event for event in history if event.HasField("activity_task_completed_event_attributes")
                        and scheduled[event.activity_task_completed_event_attributes.scheduled_event_id]
                        == "run_worker_task"]
    assert len(task_completions) == 1


async def _running_on(session_factory: async_sessionmaker[AsyncSession], task_id: uuid.UUID) -> Any:
    [row] = await task_rows(session_factory, [task_id])
    return row if row.status == "running" and row.worker_id is not None else None
