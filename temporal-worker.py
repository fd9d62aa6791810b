"""Run a worker for the core task queue: the UPEE workflow and its activities.

Usage: python temporal-worker.py   (settings come from the environment, prefix PAF_)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import timedelta
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from db.engine import create_engine, create_session_factory
from llm.registry import ProviderRegistry
from settings import Settings, get_settings
from activities.registry import MAX_HEARTBEAT_THROTTLE, WORKFLOWS, build_activities

logger = logging.getLogger("paf.worker")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Poll the core task queue until `stop` is set, then drain and close everything."""
    engine = create_engine(settings.database_url, settings.database_pool_size)
    providers = ProviderRegistry(settings)
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(create_session_factory(engine), providers),
        max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
        # Lets running activities finish (or heartbeat-cancel) before the process exits.
        graceful_shutdown_timeout=timedelta(seconds=30),
    )
    logger.info("worker started on task queue %s at %s", settings.temporal_task_queue, settings.temporal_address)
    try:
        async with worker:
            await stop.wait()
            logger.info("shutting down worker")
    finally:
        await providers.close()
        await engine.dispose()
    logger.info("worker stopped")


def main() -> int:
    settings = get_settings()
    configure_logging(settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

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
