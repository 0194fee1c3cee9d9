"""The CLI refuses what the service cannot do, with the reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from researchdesk import cli
from researchdesk.config import MAX_WORKER_CONCURRENCY, Settings


@pytest.mark.parametrize("value", ["0", str(MAX_WORKER_CONCURRENCY + 1)])
def test_worker_concurrency_out_of_range_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["worker", "--concurrency", value])
    assert exited.value.code == 2
    assert f"must be from 1 to {MAX_WORKER_CONCURRENCY}" in capsys.readouterr().err


def test_the_setting_has_the_same_limit() -> None:
    assert Settings(worker_concurrency=MAX_WORKER_CONCURRENCY).worker_concurrency == 10_000
    with pytest.raises(ValidationError):
        Settings(worker_concurrency=MAX_WORKER_CONCURRENCY + 1)


def test_serve_refuses_several_processes_on_sqlite(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESEARCHDESK_DATABASE_URL", sqlite_url)
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--workers", "2"])
    assert exited.value.code == 2
    assert "--workers needs PostgreSQL" in capsys.readouterr().err
