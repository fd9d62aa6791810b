"""The FastAPI application: builds the shared clients once and mounts the routers."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from api.deps import AppState
from api.errors import BodySizeLimitMiddleware, install_error_handlers
from api.events import EventHub
from api.retention import purge_expired_events_forever
from api.routes import auth, chat, health, jobs, keys, runs, users, workers
from db.engine import create_engine, create_session_factory
from llm.registry import ProviderRegistry
from settings import Settings, get_settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger().handlers:
            # Under plain uvicorn nothing configures the application's own loggers.
            logging.basicConfig(level=settings.log_level.upper(),
                                format="%(asctime)s %(levelname)s %(name)s %(message)s")
        engine = create_engine(settings.database_url, settings.database_pool_size)
        # Lazy: the API starts while Temporal is down, reports it in /api/health and connects on first use.
        temporal = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace, lazy=True)
        hub = EventHub(settings.database_url)
        await hub.start()
        providers = ProviderRegistry(settings)
        if settings.jwt_secret is not None:
            jwt_secret = settings.jwt_secret.get_secret_value()
        else:
            jwt_secret = secrets.token_hex(32)
            logger.warning("PAF_JWT_SECRET is not set: access tokens are signed with a random key, "
                           "end when this process stops and are not accepted by other API processes")
        app.state.paf = AppState(
            settings=settings,
            session_factory=create_session_factory(engine),
            temporal=temporal,
            providers=providers,
            hub=hub,
            jwt_secret=jwt_secret,
        )
        cleanup = asyncio.create_task(purge_expired_events_forever(
            app.state.paf.session_factory, settings.run_events_retention_seconds))
        logger.info("API started: Temporal %s, task queue %s", settings.temporal_address, settings.temporal_task_queue)
        try:
            yield
        finally:
            cleanup.cancel()
            await hub.stop()
            await providers.close()
            await engine.dispose()
            logger.info("API stopped")

    app = FastAPI(
        title="PAF Core Agent",
        version="0.1.0",
        description="Chat turns and jobs for LLM agents, run as Temporal workflows.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # A JSON-escaped message can take up to 6 bytes a character; 64 KiB more covers the other fields.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_message_chars * 6 + 65536)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(keys.router)
    app.include_router(chat.router)
    app.include_router(runs.router)
    app.include_router(jobs.router)
    app.include_router(workers.router)
    app.include_router(health.router)
    return app


# The ASGI entry point for `uvicorn api.app:app`; settings are read from the environment here.
app = create_app()
