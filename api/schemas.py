"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

ItemT = TypeVar("ItemT")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The size limit is checked in the route, so an oversized message gets 413, not 422.
    message: str = Field(min_length=1, description="The user's message")
    conversation_id: uuid.UUID | None = Field(default=None, description="Continue this conversation; omit to start one")
    model: str | None = Field(default=None, min_length=1, max_length=100,
                              description="A configured model name; default from settings")
    # Strict, so `true` is not read as 1.0; NaN and infinities are rejected.
    temperature: float = Field(default=0.7, ge=0.0, le=2.0, strict=True, allow_inf_nan=False)
    show_thinking: bool = Field(default=False, description="Stream UPEE phase progress as `thinking` events")
    multitask: Literal["enqueue", "reject", "interrupt"] = Field(
        default="enqueue",
        description="When a turn of the conversation is still running: run after it (enqueue), respond with 409 "
                    "(reject), or cancel it and start this one (interrupt)")
    on_disconnect: Literal["continue", "cancel"] = Field(
        default="continue", description="What a disconnect of the streaming client does to the turn")

    @field_validator("message")
    @classmethod
    def _check_message_text(cls, message: str) -> str:
        if not message.strip():
            raise ValueError("message must contain more than whitespace")
        if "\x00" in message:
            # PostgreSQL text columns cannot store NUL characters.
            raise ValueError("message must not contain NUL (\\u0000) characters")
        return message


class ChatResponse(BaseModel):
    request_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    content: str
    quality_score: float | None
    refinements: int
    usage: dict[str, int]


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: str
    content: str
    status: str
    request_id: uuid.UUID | None
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str | None
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    total: int
    limit: int
    offset: int


class PhaseTimingOut(BaseModel):
    phase: str
    refinement: int
    duration_ms: int | None


class RunStatus(BaseModel):
    request_id: uuid.UUID
    conversation_id: uuid.UUID
    status: str = Field(description="running, completed, failed, cancelled, terminated or timed_out")
    phase: str | None = Field(description="The phase running now; null once the run has ended")
    message_id: uuid.UUID | None
    quality_score: float | None
    refinements: int
    timings: list[PhaseTimingOut]
    usage: dict[str, int]
    error: str | None
    created_at: datetime


class CancelOut(BaseModel):
    request_id: uuid.UUID
    status: str


class ModelStatus(BaseModel):
    name: str
    provider: str
    model: str
    base_url: str | None
    default: bool
    reachable: bool
    latency_ms: float | None
    error: str | None = None


class CheckResult(BaseModel):
    ok: bool
    latency_ms: float | None
    error: str | None = None


class HealthOut(BaseModel):
    status: str
    database: CheckResult
    temporal: CheckResult
    providers: dict[str, CheckResult]


class ErrorOut(BaseModel):
    """The body of every error response."""

    detail: Any
    message: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return."""
    descriptions = {
        401: "Missing, invalid, expired or revoked API key",
        403: "The caller's role or key scope lacks the permission",
        404: "Not found, or owned by another user",
        409: "The run has already ended",
        413: "Message or body too large",
        429: "Too many chat turns started; see Retry-After",
        502: "The turn failed",
        503: "A dependency is unavailable",
        504: "The turn is still running",
    }
    return {code: {"model": ErrorOut, "description": descriptions[code]} for code in codes}
