"""The master key: from `RESEARCHDESK_SECRET_KEY`, or a key file created once, owner-only, on
which processes starting at once agree; never logged, never echoed."""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from researchdesk import key_file
from researchdesk.config import Settings
from researchdesk.key_file import (
    MasterKeyError,
    key_file_path,
    load_master_key,
    read_or_create_key_file,
)
from researchdesk.master_key import MasterKey
from researchdesk.webhooks.signing import endpoint_secret

SETTING = "a-master-key-set-in-the-environment-0123"


def secret_under(key: MasterKey) -> str:
    """What an endpoint's secret is under `key`: keys compare by what they derive."""
    return endpoint_secret(key, "whep_1", "c2FsdA==")


def test_a_key_file_is_made_on_first_use_owner_only_and_then_read(tmp_path: Path) -> None:
    path = tmp_path / "researchdesk.secret"
    text = read_or_create_key_file(path)
    assert len(base64.b64decode(text, validate=True)) == 32
    assert path.read_text() == text + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_key_file(path) == text
    assert [p.name for p in tmp_path.iterdir()] == ["researchdesk.secret"]  # no temporary left


def test_threads_creating_the_key_file_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "researchdesk.secret"
    start = threading.Barrier(8)

    def create() -> str:
        start.wait()
        return read_or_create_key_file(path)

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: create(), range(8)))
    assert len(set(keys)) == 1
    assert path.read_text().strip() == keys[0]
    assert [p.name for p in tmp_path.iterdir()] == ["researchdesk.secret"]


def test_processes_creating_the_key_file_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "researchdesk.secret"
    code = (
        "import sys; from pathlib import Path; "
        "from researchdesk.key_file import read_or_create_key_file; "
        "print(read_or_create_key_file(Path(sys.argv[1])))"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        for _ in range(4)
    ]
    keys = {process.communicate(timeout=60)[0].decode().strip() for process in processes}
    assert [process.returncode for process in processes] == [0] * 4
    assert keys == {path.read_text().strip()}


def test_a_process_that_loses_the_race_takes_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process links its key in between this one's look and its own link.
    path = tmp_path / "researchdesk.secret"
    winner = base64.b64encode(b"w" * 32).decode()
    link = os.link

    def racing_link(source: Path, target: Path) -> None:
        path.write_text(winner + "\n")
        link(source, target)

    monkeypatch.setattr(key_file.os, "link", racing_link)
    assert read_or_create_key_file(path) == winner
    assert path.read_text().strip() == winner
    assert [p.name for p in tmp_path.iterdir()] == ["researchdesk.secret"]


def test_the_setting_is_the_key_and_no_file_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(secret_key=SETTING, database_url="postgresql+asyncpg://h/db")
    assert secret_under(load_master_key(settings)) == secret_under(MasterKey.from_text(SETTING))
    assert list(tmp_path.iterdir()) == []


def test_the_key_files_text_as_the_setting_gives_the_same_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'researchdesk.db'}"
    from_file = load_master_key(Settings(database_url=url))
    text = (tmp_path / "researchdesk.secret").read_text()
    from_setting = load_master_key(Settings(database_url=url, secret_key=text.strip()))
    assert secret_under(from_file) == secret_under(from_setting)


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("sqlite+aiosqlite:////srv/data/rd.db", "/srv/data/researchdesk.secret"),
        ("sqlite+aiosqlite:///./researchdesk.db", "researchdesk.secret"),
        ("sqlite+aiosqlite:///db/rd.db", "db/researchdesk.secret"),
        ("sqlite+aiosqlite://", "researchdesk.secret"),
        ("sqlite+aiosqlite:///:memory:", "researchdesk.secret"),
        ("postgresql+asyncpg://user@db:5432/researchdesk", "researchdesk.secret"),
    ],
)
def test_the_key_file_is_beside_the_sqlite_database_else_in_the_working_directory(
    database_url: str, expected: str
) -> None:
    assert key_file_path(Settings(database_url=database_url)) == Path(expected)


def test_the_key_file_setting_wins(tmp_path: Path) -> None:
    settings = Settings(
        database_url="sqlite+aiosqlite:///./researchdesk.db", secret_key_file=tmp_path / "k"
    )
    assert key_file_path(settings) == tmp_path / "k"


def test_a_key_file_without_a_usable_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "researchdesk.secret"
    path.write_text("short\n")
    with pytest.raises(MasterKeyError, match="no key of at least 32 characters"):
        read_or_create_key_file(path)


def test_a_key_file_that_cannot_be_made_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="RESEARCHDESK_SECRET_KEY"):
        read_or_create_key_file(tmp_path / "missing" / "researchdesk.secret")


def test_a_short_setting_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(secret_key="not-long-enough-but-still-mine")
    assert "not-long-enough" not in str(refused.value)


def test_an_empty_setting_means_the_key_file() -> None:
    assert Settings(secret_key="").secret_key is None


def test_the_key_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite+aiosqlite:///{tmp_path / 'researchdesk.db'}"
    from_file = load_master_key(Settings(database_url=url))
    text = (tmp_path / "researchdesk.secret").read_text().strip()
    from_setting = load_master_key(Settings(secret_key=SETTING))
    assert "researchdesk.secret" in caplog.text  # where the key came from is logged
    for secret in (text, SETTING):
        assert secret not in caplog.text
        assert secret not in repr(from_file)
        assert secret not in repr(from_setting)


def test_a_key_file_others_can_read_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "researchdesk.secret"
    text = read_or_create_key_file(path)
    path.chmod(0o644)
    assert read_or_create_key_file(path) == text
    assert "chmod 600" in caplog.text
