"""Process settings, read once at start from the environment (prefix ``PAF_``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ProviderKind = Literal["openai", "anthropic"]

DEFAULT_LOCAL_MODEL_URL = "http://127.0.0.1:8081/v1"
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret"}
# HS256 wants a key at least as long as its 256-bit output.
MIN_JWT_SECRET_CHARS = 32


class ModelConfig(BaseModel):
    """One model that chat requests may name.

    `provider` selects the wire protocol: "openai" also covers every
    OpenAI-compatible server (vLLM, Ollama, llama.cpp) through `base_url`.
    """

    name: str = Field(min_length=1, max_length=100)
    provider: ProviderKind = "openai"
    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    context_window: int = Field(default=8192, gt=0)
    # How an OpenAI-protocol server is asked for JSON: "json_schema" (OpenAI,
    # vLLM), "json_object" with a schema (llama.cpp's server) or "prompt" only.
    structured_output: Literal["json_schema", "json_object", "prompt"] = "json_schema"

    @property
    def provider_model(self) -> str:
        """The model name sent to the provider; defaults to `name`."""
        return self.model or self.name


def default_models() -> list[ModelConfig]:
    return [
        ModelConfig(
            name="smollm2-135m",
            provider="openai",
            base_url=DEFAULT_LOCAL_MODEL_URL,
            api_key=SecretStr("local"),
            context_window=2048,
            structured_output="json_object",
        )
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAF_", env_file=None, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"

    database_url: str = Field(
        default="postgresql+asyncpg://paf@127.0.0.1:5433/paf",
        validation_alias="DATABASE_URL",
    )
    database_pool_size: int = Field(default=10, gt=0)

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "paf-core"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    models: list[ModelConfig] = Field(default_factory=default_models)
    default_model: str | None = None
    provider_timeout_seconds: float = Field(default=120.0, gt=0)

    # Chat turn limits and UPEE tuning.
    max_message_chars: int = Field(default=32_000, gt=0)
    history_messages: int = Field(default=20, gt=0)
    quality_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_refinements: int = Field(default=1, ge=0, le=5)
    chat_wait_seconds: float = Field(default=300.0, gt=0)
    # Chat turns a user, and separately one API key, may start per minute; 0 turns a limit off.
    chat_turns_per_minute_per_user: int = Field(default=60, ge=0)
    chat_turns_per_minute_per_key: int = Field(default=60, ge=0)
    # Sign-in. Without a secret a random one is made per process: tokens then die with it
    # and are not shared between replicas, so production requires one.
    jwt_secret: SecretStr | None = None
    access_token_minutes: int = Field(default=15, gt=0)
    refresh_token_days: int = Field(default=7, gt=0)
    password_min_length: int = Field(default=8, ge=1, le=72)
    # Whether anyone may create an account with POST /api/auth/signup (role "user").
    allow_signup: bool = False
    # Failed logins allowed per username per minute before 429; 0 turns the limit off.
    login_failures_per_minute: int = Field(default=10, ge=0)
    # Sign-ups allowed per client address per minute when sign-up is open; 0 turns the limit off.
    signups_per_minute_per_address: int = Field(default=5, ge=0)
    # Scheduled jobs.
    jobs_created_per_minute_per_user: int = Field(default=30, ge=0)
    jobs_created_per_minute_per_key: int = Field(default=30, ge=0)
    # Jobs a user may have at once (deleted ones aside); each recurring job keeps the workers busy.
    max_jobs_per_user: int = Field(default=100, ge=1)
    # How late a missed run may still start, after Temporal or the workers were down.
    job_catchup_window_seconds: int = Field(default=60, ge=10)
    job_default_timeout_seconds: int = Field(default=600, gt=0)
    # Webhook actions and http_fetch tasks refuse private, loopback and link-local addresses unless this is true.
    http_allow_private_addresses: bool = False
    http_max_response_bytes: int = Field(default=1_048_576, gt=0)
    # Worker agents. A worker polls one task queue per capability, named after the core queue.
    worker_name: str | None = Field(default=None, max_length=100)
    # Prefix of the capability task queues; default "<temporal_task_queue>-capability-".
    capability_queue_prefix: str | None = Field(default=None, min_length=1, max_length=150)
    # None: every built-in capability. An empty list: the core queue only.
    worker_capabilities: list[str] | None = None
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    # A worker whose last heartbeat is older than this is marked unhealthy by the health check.
    worker_unhealthy_after_seconds: float = Field(default=30.0, gt=0)
    worker_max_concurrent_tasks: int = Field(default=10, gt=0)
    # How long a task waits for a worker with its capability before it fails.
    worker_task_wait_seconds: float = Field(default=300.0, gt=0)
    worker_task_default_timeout_seconds: int = Field(default=300, gt=0)
    # How long the UPEE Execute phase waits for the worker tasks that Plan chose.
    upee_worker_task_timeout_seconds: float = Field(default=60.0, gt=0)
    # How long a finished turn's events stay available to resuming clients.
    run_events_retention_seconds: float = Field(default=86_400.0, gt=0)

    @field_validator("models")
    @classmethod
    def _check_model_names_unique(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        names = [model.name for model in models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, repeated: {', '.join(duplicates)}")
        if not models:
            raise ValueError("at least one model must be configured in PAF_MODELS")
        return models

    @model_validator(mode="after")
    def _check_default_model(self) -> Settings:
        if self.default_model is not None and self.model_by_name(self.default_model) is None:
            raise ValueError(
                f"PAF_DEFAULT_MODEL={self.default_model!r} is not one of the configured models: "
                + ", ".join(model.name for model in self.models)
            )
        return self

    @model_validator(mode="after")
    def _check_production_secrets(self) -> Settings:
        if self.environment != "production":
            return self
        for model in self.models:
            key = model.api_key.get_secret_value() if model.api_key else ""
            if model.base_url is None and key.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"model {model.name!r} has no real API key in production")
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if len(secret) < MIN_JWT_SECRET_CHARS or secret.lower() in PLACEHOLDER_SECRETS:
            raise ValueError(f"PAF_JWT_SECRET must be set to at least {MIN_JWT_SECRET_CHARS} random characters "
                             "in production, e.g. the output of `openssl rand -hex 32`")
        return self

    def capability_queue(self, capability: str) -> str:
        """Return the task queue of worker agents with `capability`."""
        prefix = self.capability_queue_prefix or f"{self.temporal_task_queue}-capability-"
        return f"{prefix}{capability}"

    @property
    def default_model_name(self) -> str:
        return self.default_model or self.models[0].name

    def model_by_name(self, name: str) -> ModelConfig | None:
        return next((model for model in self.models if model.name == name), None)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings of this process, read from the environment on first use."""
    return Settings()
