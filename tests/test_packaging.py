"""The migrations live in `alembic/` at the top of the repository and still install with the
package: `alembic upgrade head` works from a checkout, and `researchdesk migrate` from a wheel
installed where no checkout is."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = sorted(path.name for path in (ROOT / "alembic" / "versions").glob("*.py"))
HEAD = VERSIONS[-1].split("_", 1)[0]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the source (the build leaves nothing in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("src", "alembic"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
    )
    (built,) = out.glob("researchdesk-*.whl")
    return built


def schema_version(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(version)


def test_there_is_one_line_of_revisions_ending_at_the_newest_file() -> None:
    assert VERSIONS[0].startswith("0001_")
    assert [name[:4] for name in VERSIONS] == [f"{n:04d}" for n in range(1, len(VERSIONS) + 1)]


def test_the_wheel_carries_the_migrations_as_researchdesk_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    carried = sorted(
        name.rsplit("/", 1)[1] for name in names if name.startswith("researchdesk/migrations/")
    )
    assert carried == sorted(["env.py", "script.py.mako", *VERSIONS])
    # And the package's other data: the dashboard's templates and assets, the price snapshot.
    package = ROOT / "src" / "researchdesk"
    for folder in ("dashboard/templates", "dashboard/assets"):
        for path in (package / folder).iterdir():
            assert f"researchdesk/{folder}/{path.name}" in names
    assert [
        name
        for name in names
        if name.startswith("researchdesk/pricing/") and name.endswith(".json")
    ]
    # Nothing installs as a top-level `alembic`: it would shadow the library.
    assert not [name for name in names if name.startswith("alembic")]


def test_researchdesk_migrate_from_an_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
        check=True,
    )
    database = tmp_path / "installed.db"
    # Run somewhere else, with the wheel's package first on the path: not the checkout's.
    code = (
        "import sys, researchdesk, researchdesk.cli as cli; "
        "print(researchdesk.__file__); sys.exit(cli.main(['migrate']))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "RESEARCHDESK_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(target))
    assert schema_version(database) == HEAD


def test_alembic_upgrade_head_from_the_checkout(tmp_path: Path) -> None:
    database = tmp_path / "checkout.db"
    env = {**os.environ, "RESEARCHDESK_DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    alembic = [str(BIN / "alembic"), "-c", str(ROOT / "alembic.ini")]
    for command in (["upgrade", "head"], ["check"], ["downgrade", "base"], ["upgrade", "head"]):
        done = subprocess.run(
            [*alembic, *command], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stderr)
    assert schema_version(database) == HEAD
