"""Run labels (`slug`, `title`) and an event log without internal entries.

`slug` and `title` are the optional labels a client gives its run; `slug` is a list filter.
Cancel requests are no longer logged as stream events (the stream's sequence numbers must
have no gaps), so the legacy entries are removed.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("slug", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("title", sa.String(length=512), nullable=True))
        batch.create_index("ix_responses_slug_created", ["slug", "created_at"])
    op.execute("DELETE FROM events WHERE type = 'response.cancel_requested'")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("responses") as batch:
        batch.drop_index("ix_responses_slug_created")
        batch.drop_column("title")
        batch.drop_column("slug")
