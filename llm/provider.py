"""The chat provider interface and the structured-output helper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from llm.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    JSONSchema,
    StreamItem,
    StructuredOutputError,
    Usage,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


class ChatProvider(Protocol):
    """A chat-completion backend for one configured model."""

    name: str

    async def complete(self, request: CompletionRequest) -> Completion:
        """Return the whole answer to `request`."""
        ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Yield the answer as TextDelta items, then one StreamEnd with the usage."""
        ...

    async def check(self) -> None:
        """Raise ProviderError unless the provider responds to a cheap request."""
        ...

    async def close(self) -> None: ...


def schema_for(model_type: type[BaseModel]) -> JSONSchema:
    return JSONSchema(name=model_type.__name__.lower(), schema=model_type.model_json_schema())


def extract_json(text: str) -> str:
    """Return the JSON object inside `text`, dropping code fences or prose around it."""
    start = text.find("{")
    end = text.rfind("}")
    if start == -1 or end < start:
        raise StructuredOutputError(f"answer contains no JSON object: {text[:200]!r}")
    return text[start : end + 1]


async def complete_structured(
    provider: ChatProvider,
    messages: list[ChatMessage],
    model_type: type[ModelT],
    *,
    max_tokens: int,
    temperature: float,
) -> tuple[ModelT, Usage]:
    """Ask for an answer following `model_type`'s JSON schema and validate it.

    Raises:
        StructuredOutputError: the answer is not valid JSON for the schema.
        ProviderError: the call itself failed.
    """
    request = CompletionRequest(
        messages=messages,
        max_tokens=max_tokens,
        temperature=temperature,
        response_schema=schema_for(model_type),
    )
    completion = await provider.complete(request)
    try:
        return model_type.model_validate_json(extract_json(completion.text)), completion.usage
    except (ValidationError, json.JSONDecodeError) as error:
        raise StructuredOutputError(
            f"answer does not match the {model_type.__name__} schema: {error}"
        ) from error
