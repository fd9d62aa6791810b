"""Helpers for reading SSE streams and waiting on the database in tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

T = TypeVar("T")


@dataclass
class ReceivedEvent:
    id: str
    event: str
    data: dict[str, Any]
    received_at: float


async def collect_stream(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], timeout: float = 60
) -> list[ReceivedEvent]:
    """POST /api/chat/stream and return every event up to `done`."""
    events: list[ReceivedEvent] = []

    async def read() -> None:
        async with aconnect_sse(http, "POST", "/api/chat/stream", json=body, headers=headers) as source:
            assert source.response.status_code == 200, source.response.status_code
            async for sse in source.aiter_sse():
                events.append(ReceivedEvent(sse.id, sse.event, json.loads(sse.data) if sse.data else {},
                                            time.monotonic()))
                if sse.event == "done":
                    return

    await asyncio.wait_for(read(), timeout=timeout)
    return events


async def wait_for(check: Callable[[], Awaitable[T | None]], timeout: float = 30, interval: float = 0.1) -> T:
    """Poll `check` until it returns a value other than None or False."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
