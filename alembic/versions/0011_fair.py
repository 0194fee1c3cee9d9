"""Fair claims and rate limits: each run's turn in the fair queue, and per-caller counters.

Runs queued before this revision get turn 0, so they are claimed before any new one, as they
would have been (oldest first).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "responses", sa.Column("turn", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.create_index("ix_responses_status_turn", "responses", ["status", "turn", "created_at", "id"])
    op.create_table(
        "rate_limits",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "kind"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("rate_limits")
    op.drop_index("ix_responses_status_turn", table_name="responses")
    op.drop_column("responses", "turn")
