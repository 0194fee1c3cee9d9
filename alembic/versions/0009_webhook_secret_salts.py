"""Webhook signing secrets leave the database: each endpoint keeps a salt instead.

An endpoint's secret is now derived whenever it is needed, from the master key
(`RESEARCHDESK_SECRET_KEY`, or the key file), the endpoint's id and this salt; the plaintext
`secret` column is dropped. The secrets stored until now cannot be kept (keeping them is what
this revision ends): every existing endpoint gets a random salt, and so a new secret, which
nobody has seen. Deliveries go on being sent, signed with it; to verify them again, fetch the
new secret with `POST /v1/webhooks/{id}/rotate_secret` (or `researchdesk webhooks
rotate-secret ID`), or delete the endpoint and register it again.

SQLite adds a NOT NULL column only with a default, so the column is added with the default
''; every existing row then gets its salt; PostgreSQL drops the default again. The table is not
rebuilt (on SQLite, with foreign keys on, rebuilding it would delete its deliveries).

Downgrading brings the `secret` column back with a new random secret for every endpoint: the
derived ones cannot be written there without the master key, which migrations do not read.

Revision ID: 0009
Revises: 0008
"""

import base64
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENDPOINTS = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.String()),
    sa.column("secret", sa.String()),
    sa.column("secret_salt", sa.String()),
)


def _random(size: int) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode()


def _fill(column: str, value: str, size: int) -> None:
    """Give every endpoint its own random value in `column` (`value` adds a prefix)."""
    connection = op.get_bind()
    ids = connection.execute(sa.select(_ENDPOINTS.c.id)).scalars().all()
    for endpoint_id in ids:
        connection.execute(
            sa.update(_ENDPOINTS)
            .where(_ENDPOINTS.c.id == endpoint_id)
            .values({column: value + _random(size)})
        )


def _add_filled(column: str, length: int, prefix: str, size: int) -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column(column, sa.String(length=length), nullable=False, server_default=""),
    )
    _fill(column, prefix, size)
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("webhook_endpoints", column, server_default=None)


def upgrade() -> None:
    """Apply this revision."""
    _add_filled("secret_salt", 64, "", 16)
    op.drop_column("webhook_endpoints", "secret")


def downgrade() -> None:
    """Revert this revision."""
    _add_filled("secret", 128, "whsec_", 32)
    op.drop_column("webhook_endpoints", "secret_salt")
