"""A small client of the HTTP API, used by `paf chat` and the stack's first turn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse


class ChatError(RuntimeError):
    """The API rejected the request or the turn ended with an error event."""


def error_text(response: httpx.Response) -> str:
    """Return the API's readable error: its `message`, else its `detail`, else the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)
    return response.text


@dataclass(frozen=True)
class StreamEvent:
    id: str
    event: str
    data: dict[str, Any]


async def stream_chat(
    client: httpx.AsyncClient, api_key: str, message: str, **options: Any
) -> AsyncIterator[StreamEvent]:
    """POST /api/chat/stream and yield its events until `done`."""
    body = {"message": message, **{key: value for key, value in options.items() if value is not None}}
    async with aconnect_sse(client, "POST", "/api/chat/stream", json=body, headers={"X-API-Key": api_key}) as source:
        if source.response.status_code != 200:
            await source.response.aread()
            raise ChatError(f"HTTP {source.response.status_code}: {error_text(source.response)}")
        async for sse in source.aiter_sse():
            event = StreamEvent(id=sse.id, event=sse.event, data=json.loads(sse.data) if sse.data else {})
            yield event
            if event.event == "done":
                return


def _describe_phase(data: dict[str, Any]) -> str:
    phase = data.get("phase")
    if data.get("status") != "completed":
        return f"[{phase}: started]"
    summary = f": {data['summary']}" if data.get("summary") else ""
    return f"[{phase}: completed in {data.get('duration_ms')} ms{summary}]"


async def print_streamed_answer(
    client: httpx.AsyncClient, api_key: str, message: str, *, out: Any, show_thinking: bool = False, **options: Any
) -> dict[str, Any]:
    """Stream an answer to `out` as it arrives; return the `complete` event's data."""
    complete: dict[str, Any] = {}
    async for event in stream_chat(client, api_key, message, show_thinking=show_thinking, **options):
        if event.event == "content":
            out.write(event.data.get("delta", ""))
            out.flush()
        elif event.event == "reset":
            reason = "refining the answer" if event.data.get("reason") != "retry" else "retrying"
            out.write(f"\n[{reason}]\n")
        elif event.event == "thinking":
            out.write(_describe_phase(event.data) + "\n")
        elif event.event == "complete":
            complete = event.data
        elif event.event == "error":
            raise ChatError(f"the turn failed: {event.data.get('message')}")
    out.write("\n")
    return complete
