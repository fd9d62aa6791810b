"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from api.roles import Permission
from db.models import JOB_TYPES, OVERLAP_POLICIES, USER_ROLES
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


def _check_no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def _check_plain_text(value: str | None) -> str | None:
    # Control and direction-changing characters in a label would mislead a reader of the logs.
    if value is None:
        return value
    if any(unicodedata.category(character) in ("Cc", "Cf", "Cs") for character in value):
        raise ValueError("must not contain control, formatting or lone surrogate characters")
    if not value.strip():
        raise ValueError("must contain more than whitespace")
    return value


MAX_JSON_DEPTH = 32


def check_json_text(value: Any, depth: int = 0) -> Any:
    """Reject NUL characters, lone surrogates and deep nesting anywhere in a JSON value.

    PostgreSQL stores neither character in text or JSONB, and deep nesting cannot be serialised.
    """
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value or any(unicodedata.category(character) == "Cs" for character in value):
            raise ValueError("must not contain NUL (\\u0000) characters or lone surrogates")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_text(key, depth + 1)
            check_json_text(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_text(item, depth + 1)
    return value


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

    _no_nul = field_validator("username", "password")(_check_no_nul)


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

    @field_validator("username", "email", mode="after")
    @classmethod
    def _lower_case(cls, value: str) -> str:
        # Stored in lower case, so that names and emails differing only in case are one user.
        return value.lower()


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

    _no_nul = field_validator("current_password")(_check_no_nul)

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

    _plain_name = field_validator("name")(_check_plain_text)

    permissions: list[Permission] | None = Field(
        default=None, max_length=len(Permission),
        description="A subset of the caller's permissions; omit for all of them")
    expires_at: AwareDatetime | None = Field(default=None, description="Omit for a key that does not expire")


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    user_id: uuid.UUID
    permissions: list[str] | None = Field(description="The key's scope; null means the owner's whole role")
    is_active: bool
    created_at: datetime
    expires_at: datetime | None
    last_used: datetime | None


    @field_validator("permissions", mode="before")
    @classmethod
    def _whole_role_as_null(cls, scope: list[str] | None) -> list[str] | None:
        return scope or None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret, pak_<key id>_<secret>; shown only in this response")


class JobAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, description="chat, webhook, worker_task or a registered type")
    params: dict[str, Any] = Field(default_factory=dict, description="The action type's parameters")

    _text = field_validator("params")(check_json_text)


MAX_JOB_TIMEOUT_SECONDS = 7 * 86_400


class JobFields(BaseModel):
    """The fields a job is created with and may later change."""

    model_config = ConfigDict(extra="forbid")

    schedule_spec: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="cron: five fields, such as `*/15 * * * *`. interval: `30s`, `15m`, `2h`, `1d` or ISO 8601 "
                    "such as `PT15M`. Omitted for one_time")
    timezone: str | None = Field(default=None, min_length=1, max_length=64,
                                 description="IANA time zone of a cron expression, default UTC")
    scheduled_at: AwareDatetime | None = Field(default=None, description="When a one_time job runs, in the future")
    action: JobAction | None = None
    overlap: Literal[OVERLAP_POLICIES] | None = Field(  # type: ignore[valid-type]
        default=None, description="What a run due while the previous one still runs does; default skip")
    max_retries: int | None = Field(default=None, ge=0, le=10, description="Retries of a failed run, default 2")
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_JOB_TIMEOUT_SECONDS,
                                        description="Limit of each attempt; default PAF_JOB_DEFAULT_TIMEOUT_SECONDS")
    catchup_window_seconds: int | None = Field(
        default=None, ge=10, le=MAX_JOB_TIMEOUT_SECONDS,
        description="How late a missed run may still start; default PAF_JOB_CATCHUP_WINDOW_SECONDS")
    enabled: bool | None = Field(default=None, description="false creates or leaves the schedule paused")

    _plain_spec = field_validator("schedule_spec", "timezone")(_check_plain_text)


class JobCreate(JobFields):
    name: str = Field(min_length=1, max_length=200)
    job_type: Literal[JOB_TYPES]  # type: ignore[valid-type]
    action: JobAction

    _plain_name = field_validator("name")(_check_plain_text)


class JobUpdate(JobFields):
    name: str | None = Field(default=None, min_length=1, max_length=200)

    _plain_name = field_validator("name")(_check_plain_text)


class ScheduleRun(BaseModel):
    scheduled_at: datetime
    started_at: datetime
    workflow_id: str


class ScheduleView(BaseModel):
    """The job's Temporal Schedule as Temporal reports it now."""

    id: str
    paused: bool
    note: str | None
    next_run_times: list[datetime]
    recent_runs: list[ScheduleRun]
    running_workflow_ids: list[str]
    runs_started: int
    runs_skipped_for_overlap: int
    runs_missed_catchup_window: int


class JobOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    job_type: str
    schedule_spec: str | None
    timezone: str
    scheduled_at: datetime | None
    action: JobAction
    overlap: str
    max_retries: int
    timeout_seconds: int | None
    catchup_window_seconds: int
    enabled: bool
    status: str = Field(description="scheduled, running, completed, failed, paused, deleted or schedule_missing")
    result: dict[str, Any] | None
    error_message: str | None
    retry_count: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    deleted_at: datetime | None
    schedule: ScheduleView | None = Field(description="null when the schedule does not exist")


class ExecutionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    job_id: uuid.UUID
    status: str
    result: dict[str, Any] | None
    error_message: str | None
    started_at: datetime
    completed_at: datetime | None
    duration_ms: int | None
    attempts: int
    cpu_seconds: float | None = Field(validation_alias=AliasChoices("cpu_usage", "cpu_seconds"))
    peak_memory_bytes: float | None = Field(validation_alias=AliasChoices("memory_usage", "peak_memory_bytes"))
    workflow_id: str | None


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_at: AwareDatetime
    end_at: AwareDatetime


class ActionTypeOut(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_type: str = Field(min_length=1, max_length=100, description="A registered task type, which is also the "
                                                                      "capability a worker needs to run it")
    payload: dict[str, Any] = Field(default_factory=dict, description="The task type's parameters")
    priority: int = Field(default=5, ge=1, le=10, description="1 runs first, 10 last")

    _text = field_validator("payload")(check_json_text)
    max_retries: int = Field(default=3, ge=0, le=10)
    timeout_seconds: int | None = Field(default=None, ge=1, le=86_400,
                                        description="Limit of each attempt; default PAF_WORKER_TASK_DEFAULT_TIMEOUT_SECONDS")


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    task_type: str
    payload: dict[str, Any]
    status: str = Field(description="pending, running, completed, failed or cancelled")
    priority: int
    max_retries: int
    retry_count: int
    timeout_seconds: int
    worker_id: uuid.UUID | None
    user_id: uuid.UUID | None
    origin: dict[str, Any]
    result: dict[str, Any] | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    waiting_reason: str | None = Field(default=None, description="Why a pending task has not started")


class WorkerOut(BaseModel):
    id: uuid.UUID
    name: str
    endpoint: str | None
    capabilities: list[str]
    status: str = Field(description="active, inactive or unhealthy")
    last_heartbeat: datetime | None
    created_at: datetime
    running_tasks: int = Field(description="Tasks the worker is running now")
    metadata: dict[str, Any]


class TaskTypeOut(BaseModel):
    name: str
    description: str
    payload_schema: dict[str, Any]
    workers: int = Field(description="Workers polling this capability's task queue now, as Temporal reports")


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
