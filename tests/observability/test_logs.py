"""Log lines: one JSON object each, with the run's context, and never a secret."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path

import pytest

from researchdesk.config import Settings
from researchdesk.observability.logs import (
    ContextFilter,
    JsonFormatter,
    Redactor,
    TextFormatter,
    logging_config,
    run_context,
    secrets_of,
    worker_context,
)

RD_KEY = "rd_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
WHSEC = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LLM_KEY = "llm-secret-value"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines into a buffer, as the service's handler does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter([LLM_KEY]))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("researchdesk.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_json_object_with_the_runs_context(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("outside")
    with worker_context("host:1:abc"):
        logger.info("idle")
        with run_context("resp_1", 2):
            logger.warning("inside %s", "a run")
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("it failed")
        logger.info("after")
    outside, idle, inside, failed, after = lines(stream)
    assert set(outside) == {"ts", "level", "logger", "message"}
    assert outside["logger"] == "researchdesk.test.logs"
    assert str(outside["ts"]).endswith("+00:00")
    assert idle["worker_id"] == "host:1:abc"
    assert "response_id" not in idle
    assert inside["message"] == "inside a run"
    assert inside["level"] == "WARNING"
    assert (inside["response_id"], inside["attempt"], inside["worker_id"]) == (
        "resp_1",
        2,
        "host:1:abc",
    )
    assert "ValueError: boom" in str(failed["exception"])
    assert failed["response_id"] == "resp_1"
    assert "response_id" not in after


def test_secrets_never_reach_a_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("headers: {'authorization': 'Bearer %s'}", RD_KEY)
    logger.info("Authorization: Bearer some-env-key-1")
    logger.info("token %s, secret %s, key %s in %s", HF_TOKEN, WHSEC, LLM_KEY, "text")
    try:
        raise RuntimeError(f"refused {HF_TOKEN}")
    except RuntimeError:
        logger.exception("with %s", RD_KEY)
    text = stream.getvalue()
    for secret in (RD_KEY, HF_TOKEN, WHSEC, LLM_KEY, "some-env-key-1"):
        assert secret not in text
    first, second, third, fourth = lines(stream)
    assert first["message"] == "headers: {'authorization': 'Bearer [redacted]'}"
    assert second["message"] == "Authorization: Bearer [redacted]"
    assert (
        third["message"] == "token hf_[redacted], secret whsec_[redacted], key [redacted] in text"
    )
    assert "hf_[redacted]" in str(fourth["exception"])


def test_identifiers_that_look_alike_are_left_alone() -> None:
    redact = Redactor(["abc"])  # too short to be searched for
    text = "settings.hf_endpoint, rd_table, whsec_, abc; but the word after bearer is blanked"
    assert redact(text) == (
        "settings.hf_endpoint, rd_table, whsec_, abc; but the word after bearer [redacted] blanked"
    )


def test_the_text_format_is_redacted_too() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (RD_KEY,), None)
    assert TextFormatter().format(record).endswith("INFO x: key rd_[redacted]")


def test_the_settings_secrets_are_known(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://app:db-password-1@db/rd",
        llm_api_key=LLM_KEY,
        api_keys="user-key-1, user-key-2",
        admin_api_keys="admin-key-1",
        secret_key="m" * 32,
        secret_key_file=tmp_path / "k",
    )
    assert set(secrets_of(settings)) == {
        LLM_KEY,
        "user-key-1",
        "user-key-2",
        "admin-key-1",
        "m" * 32,
        "db-password-1",
    }


def test_the_config_sends_uvicorns_lines_through_the_same_formatter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    uvicorn_loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved_uvicorn = [(lg.handlers[:], lg.level, lg.propagate) for lg in uvicorn_loggers]
    try:
        logging.config.dictConfig(logging_config("json", "info", [LLM_KEY]))
        logging.getLogger("uvicorn.access").info('%s - "GET /healthz" 200', "127.0.0.1:5")
        logging.getLogger("researchdesk.x").info("key %s", LLM_KEY)
        logging.getLogger("researchdesk.x").debug("not shown")
    finally:
        root.handlers[:], root.level = saved
        for lg, (handlers, level, propagate) in zip(uvicorn_loggers, saved_uvicorn, strict=True):
            lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate
    access, ours = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert access["logger"] == "uvicorn.access"
    assert access["message"] == '127.0.0.1:5 - "GET /healthz" 200'
    assert ours["message"] == "key [redacted]"
