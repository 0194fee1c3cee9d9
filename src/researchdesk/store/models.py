"""The tables: responses, their journal of steps, their event log, the shared tool cache, the
ledger, idempotency keys, webhook endpoints with their deliveries and attempts, API keys with
their spend per window, and the rate limit counters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every table; the Alembic migrations must match it."""


class ResponseRow(Base):
    """One research request: what was asked, its status, and who owns the run right now."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    """The database key the run was created with: its spend limits apply to every call of the
    run. NULL for a key from the environment and on an open API (no limits)."""
    created_at: Mapped[float] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(256))
    background: Mapped[bool] = mapped_column(Boolean)
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(64))
    max_cost_micros: Mapped[int] = mapped_column(BigInteger)
    instructions: Mapped[str | None] = mapped_column(Text)
    input_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON)
    slug: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(String(512))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    incomplete_reason: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    releases: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    """The last event's sequence number; -1 before the first, which is numbered 0."""
    rendered: Mapped[str | None] = mapped_column(Text, deferred=True)
    """The public JSON of the finished response, byte for byte as served; NULL until rendered.

    Deferred: only the read path selects it, so the worker never loads these bytes.
    """
    live: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The message being streamed now (where its deltas go, from which event); NULL otherwise."""
    turn: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """The run's place in the fair queue, given when it is created (`store.turns`): workers
    claim the lowest turn first, so one key's backlog does not hold up another key's runs."""

    # The list pages by `(created_at, id)` under equality filters, and the claim takes the
    # longest-expired lease or the queued run of the lowest turn: each index is one of those
    # reads, in order (`store.responses.list_responses`, `store.runs.claim_next`,
    # `store.turns`; tests/store/test_query_plans.py).
    __table_args__ = (
        Index("ix_responses_created", "created_at", "id"),
        Index("ix_responses_owner_created", "owner", "created_at", "id"),
        Index("ix_responses_status_created", "status", "created_at", "id"),
        Index("ix_responses_owner_status_created", "owner", "status", "created_at", "id"),
        Index("ix_responses_slug_created", "slug", "created_at", "id"),
        Index("ix_responses_status_lease", "status", "lease_expires_at"),
        Index("ix_responses_status_turn", "status", "turn", "created_at", "id"),
    )


RESPONSES: Table = ResponseRow.__table__  # type: ignore[assignment]


class StepRow(Base):
    """One journaled step of a run (an LLM call or a tool call), replayed on resume."""

    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    response_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("responses.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("response_id", "seq", name="uq_steps_response_seq"),)


STEPS: Table = StepRow.__table__  # type: ignore[assignment]
"""The tables of the per-step hot path, for Core statements: no ORM unit of work or ORM-enabled
DML there, whose bookkeeping cost more than the statements themselves."""


class EventRow(Base):
    """One entry of a response's event log, numbered by `sequence_number` for streaming."""

    __tablename__ = "events"

    response_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True
    )
    sequence_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)


EVENTS: Table = EventRow.__table__  # type: ignore[assignment]


class CacheRow(Base):
    """A tool's upstream answer, shared by every worker until it expires."""

    __tablename__ = "tool_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float)


class LedgerRow(Base):
    """Money for one LLM call: reserved before the call, replaced by the charge after it.

    Rows outlive their response (a deleted response still cost what it cost), and a reservation
    that was never settled (the worker died mid-call) keeps counting: the call may have been paid.
    """

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    response_id: Mapped[str] = mapped_column(String(64))
    call_index: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    """The run's database key: its `key_spend` counters move with this row (see `store.spend`)."""
    day: Mapped[str] = mapped_column(String(10))
    model: Mapped[str] = mapped_column(String(256))
    provider: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    reserved_micros: Mapped[int] = mapped_column(BigInteger)
    computed_micros: Mapped[int | None] = mapped_column(BigInteger)
    router_estimate_micros: Mapped[int | None] = mapped_column(BigInteger)
    counted: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    settled_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("response_id", "call_index", name="uq_ledger_response_call"),
        Index("ix_ledger_day", "day"),
    )


LEDGER: Table = LedgerRow.__table__  # type: ignore[assignment]


class IdempotencyRow(Base):
    """An `Idempotency-Key` a caller sent with a create, and the response it made."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class WebhookEndpointRow(Base):
    """A URL a caller registered to be told when its responses end, and its secret's salt.

    `owner` is the key hash the responses carry, or "" when the API is open (no keys).
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret_salt: Mapped[str] = mapped_column(String(64))
    """Not a secret: the signing secret is derived from the master key, the id and this salt
    (`webhooks.signing.endpoint_secret`) whenever it is needed, and never stored."""
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    # The list pages by `(created_at, id)` within an owner; a run's end finds its owner's
    # endpoints by the same index (`store.webhooks`; tests/store/test_query_plans.py).
    __table_args__ = (Index("ix_webhook_endpoints_owner_created", "owner", "created_at", "id"),)


class WebhookDeliveryRow(Base):
    """One event to send to one endpoint: the outbox row, written with the run's terminal state.

    `id` is the `webhook-id` header and `event_id` the payload's `id`: both stay the same across
    retries, so a receiver can drop repeats. `due_at` (database clock) is when a worker may next
    claim it; a claim moves it to the end of the claim's lease, so a delivery whose worker died
    is due again once that lease ends. NULL once delivered or given up.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    response_id: Mapped[str] = mapped_column(String(64))
    """No foreign key: the event happened even if the response is deleted before it is sent."""
    event_created_at: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    """`pending`, `delivered` (a 2xx answered) or `failed` (retried for the whole window)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claims: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped by each claim: the fence a worker's result write checks."""
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    due_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)

    # Workers claim the longest-due first; the API lists an endpoint's deliveries newest first.
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "due_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    )


WEBHOOK_DELIVERIES: Table = WebhookDeliveryRow.__table__  # type: ignore[assignment]


class WebhookAttemptRow(Base):
    """One HTTP attempt of a delivery: when, and the status code or the error, and a short
    excerpt of the answer (never more)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(512))
    response_excerpt: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),
    )


class ApiKeyRow(Base):
    """An API key kept in the database: the SHA-256 of its secret (never the secret), its role,
    expiry, revocation and spend limits.

    Rows are never deleted (a revoked key keeps its row): the ledger and the responses name
    them, and once any key exists the API is no longer open.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the secret, hex; also the `owner` of what the key creates."""
    hint: Mapped[str] = mapped_column(String(16))
    """The secret's first characters (`rd_AbCd…`), to tell keys apart; never enough to use."""
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    daily_limit_micros: Mapped[int | None] = mapped_column(BigInteger)
    monthly_limit_micros: Mapped[int | None] = mapped_column(BigInteger)
    creates_per_minute: Mapped[int | None] = mapped_column(Integer)
    """The key's own rate limits; null: the server's (`RESEARCHDESK_RATE_LIMIT_*`)."""
    reads_per_minute: Mapped[int | None] = mapped_column(Integer)
    runs_in_flight: Mapped[int | None] = mapped_column(Integer)

    # Every authenticated request finds its key by the hash (tests/store/test_query_plans.py).
    __table_args__ = (UniqueConstraint("hash", name="uq_api_keys_hash"),)


class KeySpendRow(Base):
    """What a key has committed in one window (a UTC day `2026-03-05` or month `2026-03`):
    charges plus open reservations, and of that the open reservations.

    The lock of a key's limit: a reservation moves it with a conditional UPDATE (only while it
    stays within the limit) in the same transaction as its ledger row, and the settlement and
    the release move it in the transactions that change that ledger row.
    """

    __tablename__ = "key_spend"

    key_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    committed_micros: Mapped[int] = mapped_column(BigInteger)
    reserved_micros: Mapped[int] = mapped_column(BigInteger)


API_KEYS: Table = ApiKeyRow.__table__  # type: ignore[assignment]
KEY_SPEND: Table = KeySpendRow.__table__  # type: ignore[assignment]


class RateLimitRow(Base):
    """How many requests of one kind one caller made in the current minute, all API processes
    together (`store.rate_limits`).

    One row per caller and kind, holding only the latest minute: a new minute restarts the
    count, so the table never grows past two rows a caller. `owner` is the key hash, or "" when
    the API is open.
    """

    __tablename__ = "rate_limits"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger)
    """Unix minutes (`epoch // 60`) of the window `count` belongs to."""
    count: Mapped[int] = mapped_column(BigInteger)


RATE_LIMITS: Table = RateLimitRow.__table__  # type: ignore[assignment]
"""For Core statements: an ORM-enabled upsert costs more CPU than the statement itself."""


class DeploymentRow(Base):
    """What every process of the deployment checks itself against (`store.deployment`): one
    row, `id` 1, written by the first process that started with this table."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    master_key_id: Mapped[str] = mapped_column(String(64))
    """`store.deployment.key_id` of the master key webhook signing secrets derive from."""
    created_at: Mapped[float] = mapped_column(Float)


DEPLOYMENT: Table = DeploymentRow.__table__  # type: ignore[assignment]
