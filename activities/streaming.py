"""Relay of answer tokens from an activity to the turn's event stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db.run_events import append_event

logger = logging.getLogger(__name__)


async def publish(
    session_factory: async_sessionmaker[AsyncSession], request_id: uuid.UUID, event: str, data: dict[str, Any]
) -> None:
    async with session_factory.begin() as session:
        await append_event(session, request_id, event, data)


class ContentRelay:
    """Writes streamed text as `content` events without holding the provider stream back.

    One writer task sends whatever text piled up while its previous write was
    in flight: one event per token when tokens are slow, larger events when
    they come faster than the database round trip.
    """

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], request_id: uuid.UUID, answer: int
    ) -> None:
        self._session_factory = session_factory
        self._request_id = request_id
        self._answer = answer
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._closed = False
        self.events_sent = 0
        self._task = asyncio.create_task(self._run())

    def push(self, text: str) -> None:
        if self._task.done():
            # Surface a failed writer at once instead of buffering into the void.
            self._task.result()
        self._pending.append(text)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                await publish(self._session_factory, self._request_id, "content",
                              {"delta": text, "answer": self._answer})
                self.events_sent += 1
                if activity.in_activity():
                    activity.heartbeat(self.events_sent)
            if self._closed and not self._pending:
                return

    async def close(self) -> None:
        """Send what is still buffered and stop the writer."""
        self._closed = True
        self._wake.set()
        await self._task

    async def abort(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the caller is already failing
            logger.debug("content relay for %s stopped", self._request_id)


# With the worker's heartbeat throttle at 0.5 s, a cancel reaches the activity within about a second.
HEARTBEAT_INTERVAL_SECONDS = 0.25


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the block runs, even while the provider sends nothing.

    Temporal delivers a cancellation to an activity only in a heartbeat's response.
    """

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_INTERVAL_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
