"""Anthropic's Messages API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from llm.errors import translated_errors
from llm.types import (
    Completion,
    CompletionRequest,
    ProviderError,
    StreamEnd,
    StreamItem,
    TextDelta,
    Usage,
)
from settings import ModelConfig


class AnthropicProvider:
    """Messages over Anthropic's protocol; structured output through one forced tool call.

    The SDK's own retries are off: Temporal's retry policy is the one retry layer.
    """

    def __init__(self, config: ModelConfig, timeout: float) -> None:
        self.name = config.name
        self.model = config.provider_model
        api_key = config.api_key.get_secret_value() if config.api_key else "unset"
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=timeout,
        )

    def _arguments(self, request: CompletionRequest) -> dict[str, Any]:
        # NOTE: temperature is not sent: the anthropic SDK 2.x has no such parameter on
        # messages.create, so every Anthropic model runs at its own default.
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        arguments: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [
                {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
            ],
        }
        if system:
            arguments["system"] = system
        schema = request.response_schema
        if schema is not None:
            arguments["tools"] = [
                {"name": schema.name, "description": "Record the answer.", "input_schema": schema.schema}
            ]
            arguments["tool_choice"] = {"type": "tool", "name": schema.name}
        return arguments

    async def complete(self, request: CompletionRequest) -> Completion:
        with translated_errors(self.name, anthropic.APIStatusError, anthropic.APIConnectionError):
            response = await self.client.messages.create(**self._arguments(request))
        usage = Usage(response.usage.input_tokens, response.usage.output_tokens)
        for block in response.content:
            if block.type == "tool_use":
                return Completion(text=json.dumps(block.input), usage=usage, finish_reason=response.stop_reason)
        text = "".join(block.text for block in response.content if block.type == "text")
        return Completion(text=text, usage=usage, finish_reason=response.stop_reason)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        usage = Usage()
        finish_reason: str | None = None
        with translated_errors(self.name, anthropic.APIStatusError, anthropic.APIConnectionError):
            stream = await self.client.messages.create(**self._arguments(request), stream=True)
            try:
                async for event in stream:
                    if event.type == "message_start":
                        usage.input_tokens = event.message.usage.input_tokens
                        usage.output_tokens = event.message.usage.output_tokens
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        yield TextDelta(event.delta.text)
                    elif event.type == "message_delta":
                        usage.output_tokens = event.usage.output_tokens
                        finish_reason = event.delta.stop_reason
                    elif event.type == "error":  # type: ignore[comparison-overlap]
                        raise ProviderError(f"{self.name} stream failed: {event}", retryable=True)
            finally:
                await stream.close()
        if finish_reason is None:
            raise ProviderError(f"{self.name} ended the stream without a stop reason", retryable=True)
        yield StreamEnd(usage=usage, finish_reason=finish_reason)

    async def check(self) -> None:
        with translated_errors(self.name, anthropic.APIStatusError, anthropic.APIConnectionError):
            await self.client.models.list(limit=1)

    async def close(self) -> None:
        await self.client.close()
