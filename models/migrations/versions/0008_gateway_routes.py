"""gateway routes: the strangler-fig routing table

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 08:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_routes",
        sa.Column("prefix", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("canary_percent", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "cohort",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
        sa.Column("legacy_writes_frozen", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.String(length=100), nullable=False, server_default="system"),
        sa.CheckConstraint(
            "mode IN ('legacy', 'new', 'shadow', 'canary', 'cohort')", name="ck_gateway_routes_mode"
        ),
        sa.CheckConstraint(
            "canary_percent BETWEEN 0 AND 100", name="ck_gateway_routes_canary_percent"
        ),
        sa.CheckConstraint("prefix LIKE '/%'", name="ck_gateway_routes_prefix"),
        sa.PrimaryKeyConstraint("prefix"),
    )


def downgrade() -> None:
    op.drop_table("gateway_routes")
