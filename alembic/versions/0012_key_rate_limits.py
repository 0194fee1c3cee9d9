"""Rate limits of a key's own: requests per minute (creates, reads) and runs in flight.

Null, as every existing key gets, means the server's setting (`RESEARCHDESK_RATE_LIMIT_*`).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("creates_per_minute", "reads_per_minute", "runs_in_flight")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("api_keys") as table:
        for name in COLUMNS:
            table.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("api_keys") as table:
        for name in reversed(COLUMNS):
            table.drop_column(name)
