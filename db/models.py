"""SQLAlchemy models of the domain records.

The schema itself comes from the Alembic migrations; these models must match
them, and a test compares the two.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names let Alembic autogenerate and downgrade name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_ROLES = ("admin", "developer", "user", "readonly")
MESSAGE_ROLES = ("user", "assistant", "system")
MESSAGE_STATUSES = ("streaming", "completed", "cancelled", "failed")
WORKER_STATUSES = ("active", "inactive", "unhealthy")
TASK_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
JOB_TYPES = ("one_time", "cron", "interval")
# "scheduled": waiting for its next run. "schedule_missing": the Temporal Schedule was
# deleted outside the API. "deleted": removed through the API, its executions kept.
JOB_STATUSES = ("scheduled", "running", "completed", "failed", "paused", "deleted", "schedule_missing")
OVERLAP_POLICIES = ("skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all")
EXECUTION_STATUSES = ("running", "completed", "failed", "cancelled")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _json(nullable: bool = False, default: str = "'{}'::jsonb") -> Mapped[Any]:
    if nullable:
        return mapped_column(JSONB, nullable=True)
    return mapped_column(JSONB, nullable=False, server_default=text(default))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_one_of("role", USER_ROLES), name="role"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    username: Mapped[str] = mapped_column(String(50), nullable=False, unique=True)
    email: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False, server_default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = _created_at()
    last_login: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tenant_id: Mapped[str | None] = mapped_column(String(100), index=True)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str | None] = mapped_column(String(255))
    # "metadata" is reserved by SQLAlchemy's declarative base; the column keeps the name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_one_of("role", MESSAGE_ROLES), name="role"),
        CheckConstraint(_one_of("status", MESSAGE_STATUSES), name="status"),
        # Reads the newest messages of a long conversation without sorting all of them.
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="completed")
    request_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)


SESSION_STATUSES = ("running", "completed", "failed", "cancelled")


class UPEESession(Base):
    __tablename__ = "upee_sessions"
    __table_args__ = (CheckConstraint(_one_of("status", SESSION_STATUSES), name="status"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    request_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    phases_data: Mapped[dict[str, Any]] = _json()
    quality_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created_at()
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="running")


class APIKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    permissions: Mapped[list[str]] = _json(default="'[]'::jsonb")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthSession(Base):
    """One sign-in: its refresh token rotates, and revoking the row ends every token it issued."""

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # The id of the one refresh token that may still be used; an older one being presented means theft.
    refresh_jti: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WorkerInstance(Base):
    __tablename__ = "worker_instances"
    __table_args__ = (CheckConstraint(_one_of("status", WORKER_STATUSES), name="status"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    # A worker registers under its name, and a restart with the same name updates the same row.
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    endpoint: Mapped[str | None] = mapped_column(String(500))
    capabilities: Mapped[list[str]] = _json(default="'[]'::jsonb")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active", index=True)
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class WorkerTask(Base):
    __tablename__ = "worker_tasks"
    __table_args__ = (
        CheckConstraint(_one_of("status", TASK_STATUSES), name="status"),
        CheckConstraint("priority BETWEEN 1 AND 10", name="priority"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    worker_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("worker_instances.id", ondelete="SET NULL"), index=True
    )
    task_type: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    payload: Mapped[dict[str, Any]] = _json()
    result: Mapped[dict[str, Any] | None] = _json(nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending", index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[int] = mapped_column(Integer, nullable=False, server_default="5")
    retry_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    max_retries: Mapped[int] = mapped_column(Integer, nullable=False, server_default="3")
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="300")
    # Where the task came from: "api", "upee" or "job", with the id of the turn or job.
    origin: Mapped[dict[str, Any]] = _json()


class CoreJob(Base):
    __tablename__ = "core_jobs"
    __table_args__ = (
        CheckConstraint(_one_of("job_type", JOB_TYPES), name="job_type"),
        CheckConstraint(_one_of("status", JOB_STATUSES), name="status"),
        CheckConstraint(_one_of("overlap", OVERLAP_POLICIES), name="overlap"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    job_type: Mapped[str] = mapped_column(String(20), nullable=False)
    schedule_spec: Mapped[str | None] = mapped_column(String(200))
    # The action's parameters; `action_type` names the action.
    payload: Mapped[dict[str, Any]] = _json()
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="scheduled", index=True)
    result: Mapped[dict[str, Any] | None] = _json(nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("worker_instances.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created_at()
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    max_retries: Mapped[int] = mapped_column(Integer, nullable=False, server_default="3")
    retry_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    action_type: Mapped[str] = mapped_column(String(100), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    overlap: Mapped[str] = mapped_column(String(20), nullable=False, server_default="skip")
    catchup_window_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="60")
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobExecution(Base):
    __tablename__ = "job_executions"
    __table_args__ = (
        CheckConstraint(_one_of("status", EXECUTION_STATUSES), name="status"),
        # Lists a job's executions newest first without sorting them all.
        Index("ix_job_executions_job_id_started_at", "job_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("core_jobs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="running")
    result: Mapped[dict[str, Any] | None] = _json(nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # CPU seconds and peak memory in bytes of the action, where they can be measured.
    cpu_usage: Mapped[float | None] = mapped_column(Float)
    memory_usage: Mapped[float | None] = mapped_column(Float)
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class FlexEvent(Base):
    __tablename__ = "flex_events"

    id: Mapped[uuid.UUID] = _uuid_pk()
    event_type: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    payload: Mapped[dict[str, Any]] = _json()
    source: Mapped[str | None] = mapped_column(String(100))
    tenant_id: Mapped[str | None] = mapped_column(String(100), index=True)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class RunEvent(Base):
    """One event of a chat turn's stream, kept so a client can resume with Last-Event-ID."""

    __tablename__ = "run_events"
    __table_args__ = (
        Index("ix_run_events_request_id_id", "request_id", "id"),
        # Finds the runs whose events have outlived their retention period.
        Index("ix_run_events_done_created_at", "created_at", postgresql_where=text("event = 'done'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    event: Mapped[str] = mapped_column(String(30), nullable=False)
    data: Mapped[dict[str, Any]] = _json()
    created_at: Mapped[datetime] = _created_at()


class RateLimitCounter(Base):
    """Requests counted in the current fixed window, per limited subject (a user or an API key)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
