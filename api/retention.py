"""Deletion of run events past their retention period and of ended sign-ins, run by every API process."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import auth_sessions
from db.run_events import delete_expired_events

logger = logging.getLogger(__name__)

# Each replica runs the same idempotent DELETE; every ten minutes keeps the table close to its window.
CLEANUP_INTERVAL_SECONDS = 600.0


async def purge_expired_events_forever(
    session_factory: async_sessionmaker[AsyncSession], retention_seconds: float
) -> None:
    while True:
        try:
            async with session_factory.begin() as session:
                deleted = await delete_expired_events(session, retention_seconds)
                sessions = await auth_sessions.delete_expired(session)
            if deleted:
                logger.info("deleted %d run events older than %.0f s", deleted, retention_seconds)
            if sessions:
                logger.info("deleted %d expired sign-in sessions", sessions)
        except (OSError, SQLAlchemyError) as error:
            logger.warning("cleanup failed, retrying in %.0f s: %s", CLEANUP_INTERVAL_SECONDS, error)
        await asyncio.sleep(CLEANUP_INTERVAL_SECONDS)
