"""A local HTTP server speaking the OpenAI and Anthropic chat protocols with scripted replies.

It runs uvicorn in a thread of its own, so its timing does not depend on the
test's event loop. Structured requests (a JSON schema or a forced tool) get the
JSON scripted for that schema; other requests get the scripted answer,
streamed token by token when asked.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from devstack.process import free_port


@dataclass
class Failure:
    """An error response for one call: the status, its body and headers."""

    status: int
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "scripted failure"}})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Script:
    answer_tokens: list[str] = field(default_factory=lambda: ["Paris", " is", " the", " capital", "."])
    structured: dict[str, Any] = field(default_factory=lambda: {
        "understanding": {"intent": "factual question", "entities": ["France"], "needs_workers": False},
        "plan": {"steps": ["state the capital"]},
        "evaluation": {"score": 0.9, "reason": "correct and concise"},
    })
    # Replies for successive evaluations; when empty, `structured["evaluation"]` is used.
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    call_latency: float = 0.0
    token_delay: float = 0.0
    # Failures for the next calls, consumed one per call, before any reply.
    failures: list[Failure] = field(default_factory=list)
    # OpenAI streams: a chunk with no choices before the text, and a usage chunk at the end.
    empty_choices_chunk: bool = True
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 11, "output_tokens": 5})
    # How many of the next streams end after their tokens with [DONE] but no finish reason.
    cut_streams: int = 0
    # How many of the next streams break off (the connection drops) after `break_after_tokens` tokens.
    broken_streams: int = 0
    break_after_tokens: int = 3


@dataclass
class CallRecord:
    protocol: str
    body: dict[str, Any]
    started: float
    first_token_sent: float | None = None
    last_token_sent: float | None = None
    # Send time of every token, in order.
    token_times: list[float] = field(default_factory=list)
    finished: float | None = None


class ScriptedProvider:
    def __init__(self) -> None:
        self.script = Script()
        self.calls: list[CallRecord] = []
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, script: Script | None = None) -> Script:
        self.script = script or Script()
        self.calls.clear()
        return self.script

    def start(self) -> None:
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/messages", self._anthropic_messages, methods=["POST"]),
        ])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="scripted-provider", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted provider did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # Shared reply logic.

    async def _begin(self, protocol: str, request: Request) -> tuple[CallRecord, Response | None]:
        body = await request.json()
        record = CallRecord(protocol=protocol, body=body, started=time.monotonic())
        self.calls.append(record)
        if self.script.failures:
            failure = self.script.failures.pop(0)
            return record, JSONResponse(failure.body, status_code=failure.status, headers=failure.headers)
        if self.script.call_latency:
            await asyncio.sleep(self.script.call_latency)
        return record, None

    def _structured_reply(self, schema_name: str) -> dict[str, Any]:
        if schema_name == "evaluation" and self.script.evaluations:
            return self.script.evaluations.pop(0)
        return self.script.structured[schema_name]

    async def _tokens(self, record: CallRecord) -> AsyncIterator[str]:
        for token in self.script.answer_tokens:
            if self.script.token_delay:
                await asyncio.sleep(self.script.token_delay)
            now = time.monotonic()
            if record.first_token_sent is None:
                record.first_token_sent = now
            record.token_times.append(now)
            yield token
            record.last_token_sent = now

    async def _models(self, _request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}]})

    # OpenAI protocol.

    async def _openai_chat(self, request: Request) -> Response:
        record, failure = await self._begin("openai", request)
        if failure is not None:
            return failure
        body = record.body
        response_format = body.get("response_format") or {}
        schema_name = (response_format.get("json_schema") or {}).get("name")
        if schema_name:
            text = json.dumps(self._structured_reply(schema_name))
            record.finished = time.monotonic()
            return JSONResponse(self._openai_completion(body, text))
        if body.get("stream"):
            return StreamingResponse(self._openai_stream(record), media_type="text/event-stream")
        text = "".join(self.script.answer_tokens)
        record.finished = time.monotonic()
        return JSONResponse(self._openai_completion(body, text))

    def _openai_completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        usage = self.script.usage
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                      "total_tokens": usage["input_tokens"] + usage["output_tokens"]},
        }

    async def _openai_stream(self, record: CallRecord) -> AsyncIterator[bytes]:
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": record.body.get("model", "scripted")}

        def chunk(payload: dict[str, Any]) -> bytes:
            return f"data: {json.dumps({**base, **payload})}\n\n".encode()

        if self.script.empty_choices_chunk:
            yield chunk({"choices": []})
        yield chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        breaks = self.script.broken_streams > 0
        if breaks:
            self.script.broken_streams -= 1
        sent = 0
        async for token in self._tokens(record):
            if breaks and sent == self.script.break_after_tokens:
                raise ConnectionAbortedError("scripted provider broke off the stream")
            yield chunk({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]})
            sent += 1
        if self.script.cut_streams > 0:
            self.script.cut_streams -= 1
            yield b"data: [DONE]\n\n"
            record.finished = time.monotonic()
            return
        yield chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (record.body.get("stream_options") or {}).get("include_usage"):
            usage = self.script.usage
            yield chunk({"choices": [], "usage": {
                "prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                "total_tokens": usage["input_tokens"] + usage["output_tokens"]}})
        yield b"data: [DONE]\n\n"
        record.finished = time.monotonic()

    # Anthropic protocol.

    async def _anthropic_messages(self, request: Request) -> Response:
        record, failure = await self._begin("anthropic", request)
        if failure is not None:
            return failure
        body = record.body
        usage = {"input_tokens": self.script.usage["input_tokens"], "output_tokens": self.script.usage["output_tokens"]}
        message = {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant",
                   "model": body.get("model", "scripted"), "stop_sequence": None}
        tool_choice = body.get("tool_choice") or {}
        if tool_choice.get("type") == "tool":
            name = tool_choice["name"]
            content = [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex}", "name": name,
                        "input": self._structured_reply(name)}]
            record.finished = time.monotonic()
            return JSONResponse({**message, "content": content, "stop_reason": "tool_use", "usage": usage})
        if body.get("stream"):
            return StreamingResponse(self._anthropic_stream(record, message, usage), media_type="text/event-stream")
        text = "".join(self.script.answer_tokens)
        record.finished = time.monotonic()
        return JSONResponse({**message, "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                             "usage": usage})

    async def _anthropic_stream(
        self, record: CallRecord, message: dict[str, Any], usage: dict[str, int]
    ) -> AsyncIterator[bytes]:
        def event(name: str, payload: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode()

        start_usage = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
        yield event("message_start", {"message": {**message, "content": [], "stop_reason": None, "usage": start_usage}})
        yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        async for token in self._tokens(record):
            yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": token}})
        yield event("content_block_stop", {"index": 0})
        yield event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": usage["output_tokens"]}})
        yield event("message_stop", {})
        record.finished = time.monotonic()
