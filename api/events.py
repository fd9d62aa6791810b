"""Delivery of a chat turn's stored events to SSE clients.

One LISTEN connection per API process wakes the streams of the turns it
serves; each stream then reads its new rows from `run_events`. The rows, not
the notifications, carry the data, so a lost notification only delays an
event until the next poll and a reconnecting client resumes exactly after its
Last-Event-ID on any API process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import ServerSentEvent
from temporalio.client import Client
from temporalio.service import RPCError

from api.runs import cancel_run, workflow_status
from db.engine import asyncpg_dsn
from db.run_events import FINAL_EVENT, NOTIFY_CHANNEL, StoredEvent, has_final_event, read_events

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# Covers a missed notification (for example while the LISTEN connection reconnects).
POLL_INTERVAL_SECONDS = 1.0
# After this long with no event, the stream queries Temporal for whether the run still exists.
LIVENESS_CHECK_SECONDS = 10.0
RECONNECT_DELAY_SECONDS = 1.0
DATABASE_OUTAGE_SECONDS = 60.0
MAX_RECONNECT_DELAY_SECONDS = 30.0


class EventHub:
    """Wakes waiting streams when PostgreSQL announces new events for their turn."""

    def __init__(self, database_url: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        url = make_url(database_url)
        self._where = f"{url.host}:{url.port or 5432}/{url.database}"
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())
        try:
            await asyncio.wait_for(self._connected.wait(), timeout=10)
        except TimeoutError:
            logger.warning("event listener not connected yet; streams poll every %.0f s", POLL_INTERVAL_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def subscribe(self, request_id: uuid.UUID) -> asyncio.Event:
        waiter = asyncio.Event()
        self._waiters[str(request_id)].add(waiter)
        return waiter

    def unsubscribe(self, request_id: uuid.UUID, waiter: asyncio.Event) -> None:
        waiters = self._waiters.get(str(request_id))
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[str(request_id)]

    def _notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        for waiter in self._waiters.get(payload, ()):
            waiter.set()

    async def _listen_forever(self) -> None:
        delay = RECONNECT_DELAY_SECONDS
        failures = 0
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn)
                await connection.add_listener(NOTIFY_CHANNEL, self._notify)
                self._connected.set()
                logger.info("listening for run events on %s, channel %s", self._where, NOTIFY_CHANNEL)
                delay, failures = RECONNECT_DELAY_SECONDS, 0
                while not connection.is_closed():
                    await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                logger.warning("event listener connection to %s closed, reconnecting", self._where)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError) as error:
                failures += 1
                # The first failure and then every tenth is logged, so an outage does not flood the log.
                if failures == 1 or failures % 10 == 0:
                    logger.warning("event listener cannot connect to %s (%d attempts), retrying in %.0f s: %s",
                                   self._where, failures, delay, error)
            finally:
                self._connected.clear()
                if connection is not None and not connection.is_closed():
                    await connection.close()
            # Wake every stream so it reads what it may have missed.
            for waiters in list(self._waiters.values()):
                for waiter in waiters:
                    waiter.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)


def to_sse(event: StoredEvent) -> ServerSentEvent:
    return ServerSentEvent(id=str(event.id), event=event.event, data=json.dumps(event.data))


async def _run_is_closed(client: Client, workflow_id: str) -> bool:
    try:
        return await workflow_status(client, workflow_id) != "running"
    except RPCError:
        return True


async def _read_through_outage(
    session_factory: async_sessionmaker[AsyncSession],
    read: Callable[[AsyncSession], Awaitable[ResultT]],
    request_id: uuid.UUID,
) -> ResultT:
    """Run `read` in a session, waiting out a PostgreSQL outage of up to a minute instead of dropping the client."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DATABASE_OUTAGE_SECONDS
    delay = 0.2
    while True:
        try:
            async with session_factory() as session:
                return await read(session)
        except (OSError, SQLAlchemyError, asyncpg.PostgresError) as error:
            if loop.time() + delay > deadline:
                raise
            logger.warning("reading events of run %s failed, retrying in %.1f s: %s", request_id, delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _final_and_next(
    session: AsyncSession, request_id: uuid.UUID, after_id: int
) -> tuple[bool, list[StoredEvent]]:
    """Return whether the run has its `done` event, and the events after `after_id`."""
    return await has_final_event(session, request_id), await read_events(session, request_id, after_id)


async def stream_events(
    *,
    hub: EventHub,
    session_factory: async_sessionmaker[AsyncSession],
    client: Client,
    request_id: uuid.UUID,
    after_id: int = 0,
    show_thinking: bool = False,
) -> AsyncIterator[ServerSentEvent]:
    """Yield the turn's events after `after_id` until its `done` event."""
    waiter = hub.subscribe(request_id)
    idle_seconds = 0.0
    try:
        if after_id > 0:
            finished, rest = await _read_through_outage(session_factory, lambda session: _final_and_next(
                session, request_id, after_id), request_id)
            if finished and not rest:
                # The client already has every event up to `done`.
                return
        while True:
            waiter.clear()
            events = await _read_through_outage(
                session_factory, lambda session: read_events(session, request_id, after_id), request_id)
            for event in events:
                after_id = event.id
                if event.event == "thinking" and not show_thinking:
                    continue
                yield to_sse(event)
                if event.event == FINAL_EVENT:
                    return
            if events:
                idle_seconds = 0.0
                continue
            try:
                await asyncio.wait_for(waiter.wait(), timeout=POLL_INTERVAL_SECONDS)
                idle_seconds = 0.0
            except TimeoutError:
                idle_seconds += POLL_INTERVAL_SECONDS
            if idle_seconds >= LIVENESS_CHECK_SECONDS:
                idle_seconds = 0.0
                if await _run_is_closed(client, f"upee-{request_id}"):
                    # The run ended without closing its stream (terminated from the Temporal UI, say).
                    finished, events = await _read_through_outage(
                        session_factory, lambda session: _final_and_next(session, request_id, after_id), request_id)
                    if not events and finished:
                        return
                    if not events:
                        yield ServerSentEvent(event="error", data=json.dumps(
                            {"message": "the run ended without finishing its stream", "type": "RunClosedError"}))
                        yield ServerSentEvent(event=FINAL_EVENT, data="{}")
                        return
    finally:
        hub.unsubscribe(request_id, waiter)


# Cancellations started as a stream closes; kept here so they are not garbage-collected mid-flight.
_pending_cancels: set[asyncio.Task[object]] = set()


async def cancel_on_disconnect(
    events: AsyncIterator[ServerSentEvent], client: Client, request_id: uuid.UUID
) -> AsyncIterator[ServerSentEvent]:
    """Relay `events`; when the client leaves before `done`, cancel the run."""
    finished = False
    try:
        async for event in events:
            if event.event == FINAL_EVENT:
                finished = True
            yield event
    finally:
        if not finished:
            logger.info("client left the stream of run %s; cancelling it", request_id)
            task = asyncio.create_task(_cancel_quietly(client, request_id))
            _pending_cancels.add(task)
            task.add_done_callback(_pending_cancels.discard)


async def _cancel_quietly(client: Client, request_id: uuid.UUID) -> None:
    try:
        await cancel_run(client, request_id)
    except RPCError as error:
        logger.warning("could not cancel run %s after its client left: %s", request_id, error)
