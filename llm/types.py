"""Provider-neutral request, response and error types for chat completion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class JSONSchema:
    """A JSON Schema the answer must follow; `name` identifies it to the provider."""

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class CompletionRequest:
    messages: list[ChatMessage]
    max_tokens: int = 512
    temperature: float = 0.7
    response_schema: JSONSchema | None = None


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of answer text, as the provider streamed it."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The last item of a stream: token usage (zero where the provider sent none)."""

    usage: Usage
    finish_reason: str | None = None


StreamItem = TextDelta | StreamEnd


class ProviderError(Exception):
    """A provider call failed.

    `retryable` is True when the same request may succeed later (timeouts,
    connection errors, 429, 5xx). `retry_after` is the delay in seconds that
    the provider requested, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


class StructuredOutputError(ProviderError):
    """The provider's answer is not JSON matching the requested schema."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
