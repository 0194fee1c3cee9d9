"""The stored JSON of a finished response, rendered once and served as is.

A response is immutable once it ends, so its public object is rendered on the first read after
that (or when the API ends it) and kept here; NULL until then.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("rendered", sa.Text(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("rendered")
