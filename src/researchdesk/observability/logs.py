"""Log lines as text or as one JSON object per line, with the run they belong to, never a secret.

`logging_config` is a `logging.config.dictConfig` dictionary: the command applies it at start,
and uvicorn applies it in each of its processes (`serve --workers N` spawns them). The worker
sets the run's context (`run_context`, `worker_context`) around each run, so that every line
logged while a run is driven carries its `response_id`, `attempt` and `worker_id`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from researchdesk.config import LogFormat, Settings

_response_id: ContextVar[str | None] = ContextVar("researchdesk_response_id", default=None)
_attempt: ContextVar[int | None] = ContextVar("researchdesk_attempt", default=None)
_worker_id: ContextVar[str | None] = ContextVar("researchdesk_worker_id", default=None)

CONTEXT_FIELDS = ("response_id", "attempt", "worker_id")
REDACTED = "[redacted]"
_PATTERNS = (
    # An Authorization header's credentials, however it is printed.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s'\",;)\]}]+"), rf"\1\2{REDACTED}"),
    # ResearchDesk API keys, Hugging Face tokens, webhook signing secrets.
    (re.compile(r"\brd_[A-Za-z0-9_-]{16,}"), f"rd_{REDACTED}"),
    (re.compile(r"\bhf_[A-Za-z0-9]{16,}"), f"hf_{REDACTED}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{16,}"), f"whsec_{REDACTED}"),
)
MIN_SECRET_CHARS = 6
"""Configured secrets shorter than this are not searched for (they would blank common words)."""


@contextmanager
def worker_context(worker_id: str) -> Iterator[None]:
    """Lines logged inside (and in tasks started inside) carry `worker_id`."""
    token = _worker_id.set(worker_id)
    try:
        yield
    finally:
        _worker_id.reset(token)


@contextmanager
def run_context(response_id: str, attempt: int) -> Iterator[None]:
    """Lines logged inside (and in tasks started inside) carry the run's id and attempt."""
    tokens = (_response_id.set(response_id), _attempt.set(attempt))
    try:
        yield
    finally:
        _attempt.reset(tokens[1])
        _response_id.reset(tokens[0])


class ContextFilter(logging.Filter):
    """Puts the current run's `response_id`, `attempt` and `worker_id` on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate `record` (never drops one)."""
        for name, var in (
            ("response_id", _response_id),
            ("attempt", _attempt),
            ("worker_id", _worker_id),
        ):
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class Redactor:
    """Blanks credentials in text: bearer tokens, `rd_`/`hf_`/`whsec_` secrets, and the exact
    values of the secrets the settings configure."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, known))) if known else None

    def __call__(self, text: str) -> str:
        """`text` without the secrets in it."""
        if self._known is not None:
            text = self._known.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class TextFormatter(logging.Formatter):
    """`time level logger: message`, redacted."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The redacted line (with its traceback, if any)."""
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `level`, `logger`, `message`, the run's context fields
    when set, and `exception` (its traceback as text) when there is one; all redacted."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self._redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = self._redact(record.exc_text)
        if record.stack_info:
            line["stack"] = self._redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret `settings` holds: the LLM key, the master key, API keys, the database
    password. Log lines never show them, whatever their shape."""
    found = [*settings.api_key_list(), *settings.admin_api_key_list()]
    for secret in (settings.llm_api_key, settings.secret_key):
        if secret is not None:
            found.append(secret.get_secret_value())
    password = urlsplit(settings.database_url).password
    if password:
        found.append(password)
    return found


def logging_config(fmt: LogFormat, level: str, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The `dictConfig` of the service's logging: one stderr handler on the root logger, in
    `fmt`; uvicorn's loggers propagate to it, so that its lines are formatted alike."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"main": {"()": formatter, "secrets": list(secrets)}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            name: {"level": level, "handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
