"""Indexes that serve the list's keyset pages and the claim without a scan or a sort.

The list orders by `(created_at, id)`, so each of its indexes ends in both columns (the old
`(owner, created_at)`, `(status, created_at)` and `(slug, created_at)` ended in `created_at`
alone and are replaced); the unfiltered list and the owner-and-status filter get their own.
The claim reads expired leases through `(status, lease_expires_at)`. No query reads responses
by `session_id`, so its index, which only cost every write, goes.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPLACED = {
    "ix_responses_owner_created": ["owner", "created_at"],
    "ix_responses_status_created": ["status", "created_at"],
    "ix_responses_slug_created": ["slug", "created_at"],
}
_NEW = {
    "ix_responses_created": ["created_at", "id"],
    "ix_responses_owner_status_created": ["owner", "status", "created_at", "id"],
    "ix_responses_status_lease": ["status", "lease_expires_at"],
}


def upgrade() -> None:
    """Apply this revision."""
    for name, columns in _REPLACED.items():
        op.drop_index(name, table_name="responses")
        op.create_index(name, "responses", [*columns, "id"])
    for name, columns in _NEW.items():
        op.create_index(name, "responses", columns)
    op.drop_index("ix_responses_session", table_name="responses")


def downgrade() -> None:
    """Revert this revision."""
    op.create_index("ix_responses_session", "responses", ["session_id"])
    for name in _NEW:
        op.drop_index(name, table_name="responses")
    for name, columns in _REPLACED.items():
        op.drop_index(name, table_name="responses")
        op.create_index(name, "responses", columns)
