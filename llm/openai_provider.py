"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai

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


class OpenAIProvider:
    """Chat completions over the OpenAI protocol.

    The SDK's own retries are off: Temporal's retry policy is the one retry layer.
    """

    def __init__(self, config: ModelConfig, timeout: float) -> None:
        self.name = config.name
        self.model = config.provider_model
        self.structured_output = config.structured_output
        api_key = config.api_key.get_secret_value() if config.api_key else "unset"
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=timeout,
        )

    def _arguments(self, request: CompletionRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        schema = request.response_schema
        if schema is not None and self.structured_output == "json_schema":
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.name, "schema": schema.schema},
            }
        elif schema is not None and self.structured_output == "json_object":
            # llama.cpp's server takes the schema here and constrains sampling to it.
            arguments["response_format"] = {"type": "json_object", "schema": schema.schema}
        return arguments

    async def complete(self, request: CompletionRequest) -> Completion:
        with translated_errors(self.name, openai.APIStatusError, openai.APIConnectionError):
            response = await self.client.chat.completions.create(**self._arguments(request))
        if not response.choices:
            raise ProviderError(f"{self.name} returned no choices", retryable=True)
        choice = response.choices[0]
        usage = Usage()
        if response.usage is not None:
            usage = Usage(response.usage.prompt_tokens, response.usage.completion_tokens)
        return Completion(text=choice.message.content or "", usage=usage, finish_reason=choice.finish_reason)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        usage = Usage()
        finish_reason: str | None = None
        with translated_errors(self.name, openai.APIStatusError, openai.APIConnectionError):
            stream = await self.client.chat.completions.create(
                **self._arguments(request), stream=True, stream_options={"include_usage": True}
            )
            try:
                async for chunk in stream:
                    # The usage chunk, and some servers' keep-alive chunks, have no choices.
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                    if choice.delta is not None and choice.delta.content:
                        yield TextDelta(choice.delta.content)
            finally:
                # Closing the response stops the provider's generation when the turn is cancelled.
                await stream.close()
        if finish_reason is None:
            # A server that drops or interrupts the stream may still send [DONE]; that answer is incomplete.
            raise ProviderError(f"{self.name} ended the stream without a finish reason", retryable=True)
        yield StreamEnd(usage=usage, finish_reason=finish_reason)

    async def check(self) -> None:
        with translated_errors(self.name, openai.APIStatusError, openai.APIConnectionError):
            await self.client.models.list()

    async def close(self) -> None:
        await self.client.close()
