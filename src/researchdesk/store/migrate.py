"""Apply the Alembic migrations to the configured database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

LOCK_KEY = 7_301_964_215
"""The advisory lock that serialises concurrent migrations on PostgreSQL."""

PACKAGE = Path(__file__).resolve().parent.parent
"""The installed `researchdesk` package."""


def migrations_folder() -> Path:
    """The folder of the migration scripts (`env.py`, `versions/`).

    They live at the top of the repository, in `alembic/`, as the design lays it out. A wheel
    carries them as `researchdesk/migrations/` (setup.py maps the folder); run from a checkout
    (an editable install, or `src` on the path) they are read where they are.
    """
    for folder in (PACKAGE / "migrations", PACKAGE.parent.parent / "alembic"):
        if (folder / "env.py").is_file():
            return folder
    raise RuntimeError(f"No migration scripts next to {PACKAGE}: the installation is broken.")


def alembic_config() -> Config:
    """An Alembic config pointing at the installed migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""

    def _upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes may start at once: one migrates, the others wait for it.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        await connection.run_sync(_upgrade)
