"""The message a run is streaming right now, so that readers can show it while it grows.

`live` is NULL unless the worker is streaming a message's text: then it says where the text goes
(`output_index`, `item_id`, `content_index`), from which event on its deltas are (`since`), and
whether they continue the text already rendered there (`continues`). The text itself is only
in the event log, as coalesced `response.output_text.delta` events.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("live", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("live")
