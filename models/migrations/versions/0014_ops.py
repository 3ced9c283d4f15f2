"""ops: partial index on payments still in flight, by status (the open-payments gauge)

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-06 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status NOT IN ('completed', 'rejected', 'cancelled', 'failed')"


def upgrade() -> None:
    op.create_index(
        "ix_payments_open_status",
        "payments",
        ["status", "created_at"],
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_open_status", table_name="payments")
