"""Migration 0009 on SQLite and PostgreSQL: stored secrets are replaced by salts, every existing
endpoint keeps its deliveries and attempts and gets a salt of its own; and back."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from researchdesk.store.db import create_engine
from researchdesk.store.migrate import alembic_config

ENDPOINTS = ("whep_a", "whep_b")


@pytest.fixture
async def bare_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An empty database, migrated by the test itself."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def migrate(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def columns(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        found = await connection.run_sync(
            lambda sync: inspect(sync).get_columns("webhook_endpoints")
        )
    return {column["name"] for column in found}


async def column_values(engine: AsyncEngine, column: str) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(text(f"SELECT {column} FROM webhook_endpoints ORDER BY id"))
        return [str(value) for (value,) in rows]


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_secrets_become_salts_and_deliveries_stay(bare_engine: AsyncEngine) -> None:
    await migrate(bare_engine, "0008")
    async with bare_engine.begin() as connection:
        for endpoint_id in ENDPOINTS:
            await connection.execute(
                text(
                    "INSERT INTO webhook_endpoints (id, owner, name, url, event_types, secret,"
                    " created_at, updated_at) VALUES (:id, '', '', 'https://8.8.8.8/', '[]',"
                    " 'whsec_plaintext', 1, 1)"
                ),
                {"id": endpoint_id},
            )
        await connection.execute(
            text(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type,"
                " response_id, event_created_at, state, attempts, claims, created_at)"
                " VALUES ('wh_1', 'whep_a', 'evt_1', 'response.completed', 'resp_1', 1,"
                " 'failed', 1, 1, 1)"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO webhook_attempts (delivery_id, number, attempted_at, status_code)"
                " VALUES ('wh_1', 1, 1, 500)"
            )
        )

    await migrate(bare_engine, "head")
    assert "secret" not in await columns(bare_engine)
    salts = await column_values(bare_engine, "secret_salt")
    assert [len(base64.b64decode(salt, validate=True)) for salt in salts] == [16, 16]
    assert len(set(salts)) == 2
    assert (
        await count(bare_engine, "webhook_deliveries"),
        await count(bare_engine, "webhook_attempts"),
    ) == (1, 1)

    await migrate(bare_engine, "0008", down=True)
    assert "secret_salt" not in await columns(bare_engine)
    secrets = await column_values(bare_engine, "secret")
    assert all(s.startswith("whsec_") and s != "whsec_plaintext" for s in secrets)
    assert len(set(secrets)) == 2
    assert await count(bare_engine, "webhook_deliveries") == 1
