"""Run a worker: the core task queue (chat turns, jobs, task bookkeeping) and one queue per capability.

Usage:
    python temporal-worker.py                                    # core queue and every built-in capability
    python temporal-worker.py --name fetcher-1 --capabilities http_fetch --no-core
Settings come from the environment, prefix PAF_ (see the README).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import os
import signal
import socket
import sys
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.worker import Worker

from activities.registry import (
    GRACEFUL_SHUTDOWN,
    MAX_HEARTBEAT_THROTTLE,
    WORKFLOWS,
    build_activities,
    build_capability_workers,
    resolve_capabilities,
)
from activities.workers import WorkerIdentity
from db import workers as worker_records
from db.engine import create_engine, create_session_factory
from llm.registry import ProviderRegistry
from settings import Settings, get_settings
from workflows.worker_tasks import WorkerHealthWorkflow

logger = logging.getLogger("paf.worker")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)


def health_schedule_id(settings: Settings) -> str:
    return f"{settings.temporal_task_queue}-worker-health"


async def ensure_health_schedule(client: Client, settings: Settings) -> None:
    """Create the schedule of the periodic worker health check, unless another worker already did."""
    every = timedelta(seconds=max(settings.worker_unhealthy_after_seconds / 2, 5.0))
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(WorkerHealthWorkflow.run, id=f"{health_schedule_id(settings)}-run",
                                           task_queue=settings.temporal_task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(health_schedule_id(settings), schedule)
        logger.info("created the worker health check schedule %s (every %s)", health_schedule_id(settings), every)
    except ScheduleAlreadyRunningError:
        # Every core worker tries at start; the first one wins.
        logger.info("the worker health check schedule %s exists", health_schedule_id(settings))


async def run_worker(settings: Settings, stop: asyncio.Event, name: str, capabilities: list[str],
                     serve_core: bool) -> None:
    """Register, poll the queues until `stop` is set, then drain, mark the worker inactive and close."""
    engine = create_engine(settings.database_url, settings.database_pool_size)
    session_factory = create_session_factory(engine)
    providers = ProviderRegistry(settings)
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    metadata: dict[str, object] = {
        "host": socket.gethostname(), "pid": os.getpid(), "version": importlib.metadata.version("paf-core-agent"),
        "concurrency": settings.worker_max_concurrent_tasks, "core_queue": serve_core,
        "task_queues": [settings.capability_queue(c) for c in capabilities],
    }
    identity = WorkerIdentity(name=name, endpoint=f"{socket.gethostname()}:{os.getpid()}",
                              capabilities=capabilities, metadata=metadata)
    async with session_factory.begin() as session:
        await identity.ensure_registered(session)
    workers = build_capability_workers(client, settings, session_factory, providers, identity, capabilities)
    if serve_core:
        workers.append(Worker(
            client, task_queue=settings.temporal_task_queue, workflows=WORKFLOWS,
            activities=build_activities(session_factory, providers),
            max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
            # Lets running activities finish (or heartbeat-cancel) before the process exits.
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        ))
        await ensure_health_schedule(client, settings)
    logger.info("worker %s (%s) started: core queue %s, capabilities %s", name, identity.worker_id,
                settings.temporal_task_queue if serve_core else "not served", ", ".join(capabilities) or "none")
    beating = asyncio.create_task(_heartbeat_forever(session_factory, settings, identity))
    try:
        async with contextlib.AsyncExitStack() as stack:
            for worker in workers:
                await stack.enter_async_context(worker)
            await stop.wait()
            logger.info("shutting down worker %s", name)
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        with contextlib.suppress(Exception):
            async with session_factory.begin() as session:
                await worker_records.mark_inactive(session, identity.worker_id)
        await providers.close()
        await engine.dispose()
    logger.info("worker %s stopped", name)


async def _heartbeat_forever(session_factory: async_sessionmaker[AsyncSession], settings: Settings,
                             identity: WorkerIdentity) -> None:
    while True:
        await asyncio.sleep(settings.worker_heartbeat_seconds)
        try:
            async with session_factory.begin() as session:
                assert identity.worker_id is not None
                if not await worker_records.heartbeat(session, identity.worker_id, len(identity.running)):
                    # Deregistered while running: register again, since this process still takes tasks.
                    await identity.ensure_registered(session)
        except Exception as error:  # noqa: BLE001 - a failed heartbeat must not stop the worker
            logger.warning("heartbeat of worker %s failed: %s", identity.name, error)


def parse_arguments(settings: Settings, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default=settings.worker_name or f"{socket.gethostname()}-{os.getpid()}",
                        help="the name the worker registers under (default: PAF_WORKER_NAME, else host-pid)")
    parser.add_argument("--capabilities", help="comma-separated task types to serve (default: "
                                               "PAF_WORKER_CAPABILITIES, else every built-in type; '' for none)")
    parser.add_argument("--no-core", action="store_true", help="do not serve the core task queue")
    return parser.parse_args(argv)


def main() -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    args = parse_arguments(settings)
    requested = args.capabilities.split(",") if args.capabilities is not None else settings.worker_capabilities
    try:
        capabilities = resolve_capabilities(settings, requested)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not capabilities and args.no_core:
        print("error: with --no-core the worker needs at least one capability", file=sys.stderr)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop, args.name, capabilities, serve_core=not args.no_core)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    exit_code = main()
    # The Temporal client can crash during interpreter teardown; the worker has shut down
    # cleanly by now, so flush and leave without running teardown.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
