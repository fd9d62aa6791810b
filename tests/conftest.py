"""Shared fixtures: a real PostgreSQL, a real Temporal dev server, a worker, the API over HTTP.

Servers are started once per test session on free loopback ports; each test
gets its own user, so tests do not see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from api.app import create_app
from db.engine import create_engine, create_session_factory
from db.users import create_api_key, create_user
from devstack import migrate
from devstack.model_server import ModelServer, default_venv
from devstack.postgres import EmbeddedPostgres, create_database
from devstack.process import ManagedProcess, free_port
from devstack.temporal import TemporalDevServer
from llm.registry import ProviderRegistry
from settings import ModelConfig, Settings
from tests.support.scripted_provider import ScriptedProvider
from activities.registry import (
    MAX_HEARTBEAT_THROTTLE,
    WORKFLOWS,
    build_activities,
    build_capability_workers,
    resolve_capabilities,
)
from activities.workers import WorkerIdentity

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_MODEL = "smollm2-135m"
JWT_SECRET = "test-signing-key-" + "0123456789abcdef" * 2
CALLER_PASSWORD = "a-long-password"


@dataclass
class Services:
    admin_url: str
    database_url: str
    temporal_address: str
    model_port: int
    state_dir: Path
    postgres: EmbeddedPostgres
    processes: list[ManagedProcess]

    def restart_postgres(self, downtime: float) -> None:
        """Stop PostgreSQL, keep it down for `downtime` seconds, and start it again on the same data."""
        self.processes[0].stop()
        time.sleep(downtime)
        self.processes[0] = self.postgres.start()


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    state = tmp_path_factory.mktemp("services")
    # PostgreSQL runs as an unprivileged account when the tests run as root, so it must reach its folder.
    state.chmod(0o755)
    for parent in state.parents:
        if parent == Path("/tmp") or parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o055)
    postgres = EmbeddedPostgres(state / "postgres", free_port())
    processes: list[ManagedProcess] = [postgres.start()]
    try:
        asyncio.run(create_database(postgres.url("postgres"), "paf_test"))
        database_url = postgres.url("paf_test")
        migrate.upgrade(database_url)
        temporal = TemporalDevServer(log_path=state / "temporal.log", port=free_port(), ui_port=None)
        processes.append(temporal.start())
        yield Services(admin_url=postgres.url("postgres"), database_url=database_url,
                       temporal_address=temporal.address, model_port=free_port(), state_dir=state,
                       postgres=postgres, processes=processes)
    finally:
        for process in reversed(processes):
            process.stop()


@pytest.fixture(scope="session")
def provider() -> Iterator[ScriptedProvider]:
    server = ScriptedProvider()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(services: Services, provider: ScriptedProvider) -> Settings:
    return Settings(
        environment="test",
        database_url=services.database_url,
        temporal_address=services.temporal_address,
        temporal_task_queue=f"paf-test-{uuid.uuid4().hex[:8]}",
        models=[
            ModelConfig(name="scripted", provider="openai", base_url=provider.openai_url, api_key="test"),
            ModelConfig(name="scripted-anthropic", provider="anthropic", base_url=provider.anthropic_url,
                        api_key="test"),
            ModelConfig(name="scripted-small", provider="openai", base_url=provider.openai_url, api_key="test",
                        context_window=1024),
            ModelConfig(name=LOCAL_MODEL, provider="openai", base_url=f"http://127.0.0.1:{services.model_port}/v1",
                        api_key="local", context_window=2048, structured_output="json_object"),
        ],
        default_model="scripted",
        max_message_chars=2000,
        max_refinements=1,
        jwt_secret=JWT_SECRET,
        # The webhook server of the job tests listens on 127.0.0.1.
        http_allow_private_addresses=True,
        quality_threshold=0.5,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture(scope="session")
async def temporal_client(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address)


@pytest.fixture(scope="session")
async def worker(
    settings: Settings, temporal_client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Worker]:
    """The core worker, with one in-process worker for every built-in capability beside it."""
    providers = ProviderRegistry(settings)
    worker = Worker(
        temporal_client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(session_factory, providers),
        max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
    )
    capabilities = resolve_capabilities(settings, None)
    identity = WorkerIdentity(name=f"test-worker-{uuid.uuid4().hex[:8]}", endpoint="in-process",
                              capabilities=capabilities)
    async with session_factory.begin() as session:
        await identity.ensure_registered(session)
    capability_workers = build_capability_workers(temporal_client, settings, session_factory, providers, identity,
                                                  capabilities)
    async with contextlib.AsyncExitStack() as stack:
        for each in (worker, *capability_workers):
            await stack.enter_async_context(each)
        yield worker
    await providers.close()


@asynccontextmanager
async def serve_api(settings: Settings) -> AsyncIterator[str]:
    """Serve the API with `settings` by uvicorn on a loopback port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def api_url(settings: Settings, worker: Worker) -> AsyncIterator[str]:
    async with serve_api(settings) as url:
        yield url


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        yield client


@dataclass
class Caller:
    user_id: uuid.UUID
    api_key: str
    username: str = ""
    password: str = CALLER_PASSWORD

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


async def make_caller(
    session_factory: async_sessionmaker[AsyncSession], role: str = "user", scope: list[str] | None = None
) -> Caller:
    name = f"user-{uuid.uuid4().hex[:12]}"
    async with session_factory.begin() as session:
        user = await create_user(session, username=name, email=f"{name}@example.com", password=CALLER_PASSWORD,
                                 role=role)
        issued = await create_api_key(session, user.id, "tests", permissions=scope)
    return Caller(user_id=user.id, api_key=issued.plaintext, username=name)


@pytest.fixture
async def caller(session_factory: async_sessionmaker[AsyncSession]) -> Caller:
    return await make_caller(session_factory)


@pytest.fixture
def script(provider: ScriptedProvider):  # type: ignore[no-untyped-def]
    """A fresh script for the scripted provider, reset for each test."""
    return provider.reset()


@pytest.fixture(scope="session")
def local_model(services: Services) -> Iterator[str]:
    """The embedded SmolLM2 server, started from the environment `make model-server` made."""
    venv = default_venv(Path(os.environ.get("PAF_STATE_DIR", PROJECT_ROOT / ".state")))
    server = ModelServer(venv=venv, port=services.model_port, log_path=services.state_dir / "model-server.log")
    process = server.start()
    yield LOCAL_MODEL
    process.stop()
