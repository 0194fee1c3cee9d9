"""Settings: one object, read from the environment, passed down explicitly."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["text", "json"]

MAX_WORKER_CONCURRENCY = 10_000
"""The most runs one worker process may drive at once (`RESEARCHDESK_WORKER_CONCURRENCY`,
`researchdesk worker --concurrency`): one limit for both."""


class Settings(BaseSettings):
    """Every tunable of the service; environment variables use the `RESEARCHDESK_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="RESEARCHDESK_",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        # A refused value is not echoed: it may be a key (a master key too short, say).
        hide_input_in_errors=True,
    )

    database_url: str = "sqlite+aiosqlite:///./researchdesk.db"
    llm_base_url: str = "https://router.huggingface.co/v1"
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RESEARCHDESK_LLM_API_KEY", "HF_TOKEN"),
    )
    hf_endpoint: str = Field(
        default="https://huggingface.co",
        validation_alias=AliasChoices("HF_ENDPOINT", "RESEARCHDESK_HF_ENDPOINT"),
    )
    arxiv_url: str = "https://arxiv.org"

    default_model: str = "moonshotai/Kimi-K2.6:novita"
    default_max_cost_usd: Decimal = Decimal("0.50")
    max_cost_usd_limit: Decimal = Decimal("20")
    allow_unpriced_models: bool = False
    pricing_file: Path | None = None

    api_keys: str | None = None
    """Comma-separated bearer keys of role `user` (each sees its own responses)."""
    admin_api_keys: str | None = None
    """Comma-separated bearer keys of role `admin` (see and manage everything). With neither
    setting and no key in the database, the API is open (local use)."""

    rate_limit_creates_per_minute: int | None = Field(default=None, ge=1)
    """Creates (`POST /v1/responses`) one key may make per minute; unset: unlimited."""
    rate_limit_reads_per_minute: int | None = Field(default=None, ge=1)
    """Every other Responses API request one key may make per minute; unset: unlimited."""
    rate_limit_runs_in_flight: int | None = Field(default=None, ge=1)
    """Responses of one key that may be queued or in progress at once; unset: unlimited."""

    worker_concurrency: int = Field(default=4, ge=1, le=MAX_WORKER_CONCURRENCY)
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)

    max_turns: int = Field(default=20, ge=1)
    tool_concurrency: int = Field(default=4, ge=1)
    llm_timeout_seconds: float = Field(default=300.0, gt=0)
    llm_max_retries: int = Field(default=4, ge=0)
    retry_base_seconds: float = Field(default=1.0, ge=0)
    retry_max_seconds: float = Field(default=60.0, ge=0)
    max_output_tokens: int = Field(default=4096, ge=16)
    final_answer_max_tokens: int = Field(default=16_384, ge=16)
    text_tool_calls: bool = True
    llm_stream: bool = True
    """Stream each LLM call (`stream: true`), so that readers watch the answer being written."""
    stream_flush_seconds: float = Field(default=0.1, gt=0, le=10)
    """How long streamed text may wait before it is written out: one event per run per period."""
    """Run a reply that is only a tool call written as text (small open models write them so)."""

    tool_timeout_seconds: float = Field(default=30.0, gt=0)
    tool_max_retries: int = Field(default=3, ge=0)
    tool_output_max_chars: int = Field(default=12_000, ge=500)
    tool_cache_ttl_seconds: float = Field(default=86_400.0, ge=0)

    sync_timeout_seconds: float = Field(default=600.0, gt=0)
    max_input_chars: int = Field(default=200_000, ge=1)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)

    secret_key: SecretStr | None = Field(default=None, min_length=32)
    """The master key webhook signing secrets derive from (`master_key`); the same on every
    host. Unset: a key file's, created on first use."""
    secret_key_file: Path | None = None
    """Where the key file is when `secret_key` is unset (default: `researchdesk.secret` beside
    the SQLite database, else in the working directory)."""

    cors_origins: str | None = None
    """Origins a browser may call the API from: comma-separated, or `*`; unset means no CORS."""

    webhook_allow_private: bool = False
    """Allow webhook endpoints on loopback, private, link-local and other non-public addresses."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    """How long a failing delivery is retried, from the event on."""
    webhook_retry_base_seconds: float = Field(default=5.0, ge=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, ge=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    """How long a worker owns a delivery it claimed; must outlast one attempt's timeout."""
    webhook_concurrency: int = Field(default=16, ge=1, le=1000)

    log_format: LogFormat = "text"
    """`json`: one JSON object per log line, with the run's `response_id`, `attempt` and
    `worker_id` where they apply (`observability.logs`)."""
    metrics_public: bool = False
    """Serve the API's `/metrics` without a key even when API keys are on (else: admin keys)."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """`researchdesk worker`: serve this process's metrics on this port (unset: none)."""
    metrics_host: str = "127.0.0.1"
    """The address the worker's metrics port listens on."""

    @model_validator(mode="after")
    def _lease_outlasts_attempt(self) -> Settings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "webhook_lease_seconds must be longer than webhook_timeout_seconds: a delivery "
                "whose lease ends mid-attempt would be sent twice at once"
            )
        return self

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `RESEARCHDESK_SECRET_KEY=` (as compose passes an unset one) means no key: the key file.
        return None if value == "" else value

    @field_validator("hf_endpoint", "llm_base_url", "arxiv_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def api_key_list(self) -> list[str]:
        """The `user` keys the environment configures."""
        return _split(self.api_keys)

    def admin_api_key_list(self) -> list[str]:
        """The `admin` keys the environment configures."""
        return _split(self.admin_api_keys)

    def cors_origin_list(self) -> list[str]:
        """The origins CORS allows (`["*"]` for any), empty when CORS is off."""
        if not self.cors_origins:
            return []
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]


def _split(keys: str | None) -> list[str]:
    """Comma-separated keys, blanks dropped."""
    return [key.strip() for key in (keys or "").split(",") if key.strip()]
