"""A benchmark stack: PostgreSQL, Temporal, the worker and the API as real processes,
with the scripted provider from the tests standing in for the model.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from db.users import create_api_key, create_user  # noqa: E402
from db.engine import create_engine, create_session_factory  # noqa: E402
from devstack import migrate  # noqa: E402
from devstack.postgres import EmbeddedPostgres, create_database  # noqa: E402
from devstack.process import ManagedProcess, free_port  # noqa: E402
from devstack.temporal import TemporalDevServer  # noqa: E402
from tests.support.scripted_provider import ScriptedProvider  # noqa: E402


@dataclass
class BenchStack:
    api_url: str
    api_key: str
    provider: ScriptedProvider
    database_url: str
    temporal_address: str
    env: dict[str, str]
    state: Path


@asynccontextmanager
async def bench_stack(worker_args: list[str] | None = None,
                      extra_env: dict[str, str] | None = None) -> AsyncIterator[BenchStack]:
    state = Path(tempfile.mkdtemp(prefix="paf-bench-"))
    state.chmod(0o755)
    processes: list[ManagedProcess] = []
    provider = ScriptedProvider()
    provider.start()
    try:
        postgres = EmbeddedPostgres(state / "postgres", free_port())
        processes.append(await asyncio.to_thread(postgres.start))
        await create_database(postgres.url("postgres"), "paf")
        database_url = postgres.url("paf")
        await asyncio.to_thread(migrate.upgrade, database_url)
        temporal = TemporalDevServer(log_path=state / "temporal.log", port=free_port(), ui_port=None)
        processes.append(await asyncio.to_thread(temporal.start))

        api_port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PAF_TEMPORAL_ADDRESS": temporal.address,
            "PAF_LOG_LEVEL": "WARNING",
            # The benchmarks start hundreds of turns as one user; limits would turn them away.
            "PAF_CHAT_TURNS_PER_MINUTE_PER_USER": "0",
            "PAF_CHAT_TURNS_PER_MINUTE_PER_KEY": "0",
            "PAF_MODELS": json.dumps([{"name": "scripted", "provider": "openai",
                                       "base_url": provider.openai_url, "api_key": "bench"}]),
            **(extra_env or {}),
        }
        worker = ManagedProcess("worker", [sys.executable, str(PROJECT_ROOT / "temporal-worker.py"),
                                           *(worker_args or [])],
                                log_path=state / "worker.log", env=env, cwd=PROJECT_ROOT)
        api = ManagedProcess("api", [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1",
                                     "--port", str(api_port), "--no-access-log", "--log-level", "warning"],
                             log_path=state / "api.log", env=env, cwd=PROJECT_ROOT)
        for process in (worker, api):
            process.start()
            processes.append(process)
        api_url = f"http://127.0.0.1:{api_port}"
        await asyncio.to_thread(api.wait_ready, lambda: httpx.get(f"{api_url}/api/health").status_code == 200, 60)

        engine = create_engine(database_url, pool_size=1)
        async with create_session_factory(engine).begin() as session:
            user = await create_user(session, username="bench", email="bench@example.com", password="bench-pass")
            key = await create_api_key(session, user.id, "bench")
        await engine.dispose()
        yield BenchStack(api_url=api_url, api_key=key.plaintext, provider=provider, database_url=database_url,
                         temporal_address=temporal.address, env=env, state=state)
    finally:
        for process in reversed(processes):
            await asyncio.to_thread(process.stop)
        provider.stop()


def run_benchmark(benchmark: Coroutine[Any, Any, None]) -> None:
    """Run `benchmark` and exit without interpreter teardown, where the Temporal client can crash."""
    asyncio.run(benchmark)
    sys.stdout.flush()
    os._exit(0)
