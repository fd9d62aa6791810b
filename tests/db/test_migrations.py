"""The migrations build exactly the models' schema and revert cleanly."""

from __future__ import annotations

import asyncio
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text, update

from db.engine import create_engine, create_session_factory
from db.models import Base, RunEvent
from db.run_events import append_event, delete_expired_events
from devstack import migrate
from devstack.postgres import create_database
from tests.conftest import Services

TABLES = {
    "users", "conversations", "messages", "upee_sessions", "api_keys", "worker_instances", "worker_tasks",
    "core_jobs", "job_executions", "flex_events", "run_events", "rate_limit_counters", "auth_sessions",
}


async def _schema_state(url: str) -> tuple[set[str], list[object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}),
                                              Base.metadata))
            return tables - {"alembic_version"}, differences
    finally:
        await engine.dispose()


async def test_upgrade_matches_models_and_downgrade_works(services: Services) -> None:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    await create_database(services.admin_url, name)
    url = services.database_url.rsplit("/", 1)[0] + f"/{name}"

    await asyncio.to_thread(migrate.upgrade, url)
    tables, differences = await _schema_state(url)
    assert tables == TABLES
    assert differences == []

    await asyncio.to_thread(migrate.downgrade, url, "base")
    tables, _ = await _schema_state(url)
    assert tables == set()


async def test_metadata_column_keeps_its_name(services: Services) -> None:
    engine = create_engine(services.database_url)
    try:
        async with engine.connect() as connection:
            columns = (await connection.execute(text(
                "SELECT table_name FROM information_schema.columns WHERE column_name = 'metadata' ORDER BY 1"
            ))).scalars().all()
    finally:
        await engine.dispose()
    assert columns == ["conversations", "messages", "worker_instances"]


async def test_expired_run_events_deleted(services: Services) -> None:
    engine = create_engine(services.database_url)
    old_run, fresh_run, open_run = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        async with create_session_factory(engine).begin() as session:
            for request_id in (old_run, fresh_run, open_run):
                await append_event(session, request_id, "content", {"delta": "x"})
            await append_event(session, old_run, "done", {})
            await append_event(session, fresh_run, "done", {})
            await session.execute(update(RunEvent).where(RunEvent.request_id == old_run)
                                  .values(created_at=func.now() - text("interval '2 hours'")))
        async with create_session_factory(engine).begin() as session:
            deleted = await delete_expired_events(session, retention_seconds=3600)
        async with create_session_factory(engine)() as session:
            left = {row.request_id for row in await session.execute(select(RunEvent.request_id).where(
                RunEvent.request_id.in_([old_run, fresh_run, open_run])))}
    finally:
        await engine.dispose()
    assert deleted == 2
    assert left == {fresh_run, open_run}
