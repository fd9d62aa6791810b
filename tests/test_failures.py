"""Failures that must lose nothing: a worker killed mid-turn, PostgreSQL restarted, a stream broken off."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.deps import AppState
from api.schemas import ChatRequest
from api.turns import start_turn
from db.models import Message, UPEESession, User
from settings import Settings
from tests.conftest import Caller, Services
from tests.helpers import collect_stream, wait_for
from tests.support.scripted_provider import Script, ScriptedProvider

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_worker(settings: Settings, provider: ScriptedProvider, task_queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "PAF_TEMPORAL_ADDRESS": settings.temporal_address,
        "PAF_TEMPORAL_TASK_QUEUE": task_queue,
        "PAF_MODELS": json.dumps([{"name": "scripted", "provider": "openai", "base_url": provider.openai_url,
                                   "api_key": "test"}]),
    }
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "temporal-worker.py")], env=env,
                                stdout=output, stderr=subprocess.STDOUT)


async def turn_outcome(
    session_factory: async_sessionmaker[AsyncSession], request_id: uuid.UUID
) -> tuple[str, list[Message]]:
    async with session_factory() as session:
        status = await session.scalar(select(UPEESession.status).where(UPEESession.request_id == request_id))
        answers = (await session.scalars(select(Message).where(
            Message.request_id == request_id, Message.role == "assistant"))).all()
    return str(status), list(answers)


async def test_worker_killed_mid_turn(
    settings: Settings, provider: ScriptedProvider, temporal_client: Client, caller: Caller,
    session_factory: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    script = provider.reset(Script(answer_tokens=[f" k{i}" for i in range(60)], token_delay=0.05))
    task_queue = f"kill-{uuid.uuid4().hex[:8]}"
    queue_settings = settings.model_copy(update={"temporal_task_queue": task_queue})
    state = AppState(settings=queue_settings, session_factory=session_factory, temporal=temporal_client,
                     providers=None, hub=None, jwt_secret="")  # type: ignore[arg-type]
    async with session_factory() as session:
        user = await session.get(User, caller.user_id)
    first = start_worker(settings, provider, task_queue, tmp_path / "worker-1.log")
    second = None
    try:
        turn = await start_turn(state, user, ChatRequest(message="tell me"))
        await wait_for(lambda: asyncio.sleep(0, result=any(c.body.get("stream") for c in provider.calls)), 30)
        await asyncio.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = start_worker(settings, provider, task_queue, tmp_path / "worker-2.log")

        async def ended() -> tuple[str, list[Message]] | None:
            outcome = await turn_outcome(session_factory, turn.request_id)
            return outcome if outcome[0] != "running" else None

        status, answers = await wait_for(ended, timeout=90, interval=0.5)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=40)

    assert status == "completed"
    assert len(answers) == 1
    assert answers[0].status == "completed"
    assert answers[0].content == "".join(script.answer_tokens)
    assert sum(1 for c in provider.calls if c.body.get("stream")) == 2


async def test_broken_stream_retried_without_duplicates(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    script = provider.reset(Script(answer_tokens=[f" b{i}" for i in range(10)], broken_streams=1,
                                   break_after_tokens=4))

    events = await collect_stream(http, caller.headers, {"message": "hello"})

    names = [e.event for e in events]
    assert names.count("reset") == 1
    after_reset = events[names.index("reset"):]
    shown = "".join(e.data["delta"] for e in after_reset if e.event == "content")
    assert shown == "".join(script.answer_tokens)
    assert events[-2].event == "complete"
    status, answers = await turn_outcome(session_factory, uuid.UUID(events[0].data["request_id"]))
    assert status == "completed"
    assert [a.content for a in answers] == ["".join(script.answer_tokens)]


async def test_postgres_restart_mid_turn(
    http: httpx.AsyncClient, caller: Caller, provider: ScriptedProvider, services: Services,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    script = provider.reset(Script(answer_tokens=[f" p{i}" for i in range(40)], token_delay=0.05))
    reader = asyncio.create_task(collect_stream(http, caller.headers, {"message": "hello"}, timeout=120))
    await wait_for(lambda: asyncio.sleep(0, result=any(c.body.get("stream") for c in provider.calls)), 30)

    await asyncio.to_thread(services.restart_postgres, 2.0)
    events = await reader

    assert events[-2].event == "complete", [e.event for e in events][-5:]
    status, answers = await turn_outcome(session_factory, uuid.UUID(events[0].data["request_id"]))
    assert status == "completed"
    assert [a.content for a in answers] == ["".join(script.answer_tokens)]
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(User)) > 0
