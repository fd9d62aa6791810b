"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from api.roles import Permission
from db.models import USER_ROLES
from db.users import MAX_PASSWORD_BYTES

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


def _check_password_bytes(password: str) -> str:
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"must be at most {MAX_PASSWORD_BYTES} UTF-8 bytes, bcrypt's limit; it is never truncated")
    if "\x00" in password:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return password


Username = Field(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$",
                 description="3 to 50 letters, digits, '_', '.' or '-'")
# The minimum length is a setting, checked in the route; the maximum is bcrypt's.
Password = Field(min_length=1, description=f"At most {MAX_PASSWORD_BYTES} UTF-8 bytes")
Role = Literal[USER_ROLES]  # type: ignore[valid-type]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=50)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Username
    email: EmailStr = Field(max_length=255)
    password: str = Password

    _password_bytes = field_validator("password")(_check_password_bytes)


class UserCreate(SignupRequest):
    role: Role = "user"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = Field(default=None, description="false deactivates the user and ends their sessions")
    email: EmailStr | None = Field(default=None, max_length=255)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Password

    _password_bytes = field_validator("new_password")(_check_password_bytes)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    email: str
    role: str
    is_active: bool
    created_at: datetime
    last_login: datetime | None


class MeOut(UserOut):
    permissions: list[Permission] = Field(description="What this credential may do: the role, narrowed by a key's scope")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    permissions: list[Permission] | None = Field(
        default=None, max_length=len(Permission),
        description="A subset of the caller's permissions; omit for all of them")
    expires_at: AwareDatetime | None = Field(default=None, description="Omit for a key that does not expire")


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    user_id: uuid.UUID
    permissions: list[str] = Field(description="The key's scope; empty means the owner's full role")
    is_active: bool
    created_at: datetime
    expires_at: datetime | None
    last_used: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret, pak_<key id>_<secret>; shown only in this response")


class ErrorOut(BaseModel):
    """The body of every error response."""

    detail: Any
    message: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return."""
    descriptions = {
        400: "The request does not apply to this kind of credential",
        401: "Missing, invalid, expired or revoked credentials",
        403: "The caller's role or key scope lacks the permission",
        404: "Not found, or owned by another user",
        409: "Conflicts with the current state",
        422: "Invalid input",
        413: "Message or body too large",
        429: "Too many requests; see Retry-After",
        502: "The turn failed",
        503: "A dependency is unavailable",
        504: "The turn is still running",
    }
    return {code: {"model": ErrorOut, "description": descriptions[code]} for code in codes}
